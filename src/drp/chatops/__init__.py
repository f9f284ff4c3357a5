"""ChatOps runtime: the sender that drains the outbox to Slack, and the interactivity endpoint."""
