"""Command groups of the ``drp`` CLI, one module each (see ``drp.cli``)."""
