"""Prefect-native alerts: an automation that tells the incident channel when a DR flow run fails
or crashes, sent by Prefect's own notification block.

Why in Prefect and not in our code: when our process dies (OOM, a kill, a lost worker), nothing
of ours is left to say so; Prefect's server sees the run go ``Crashed`` and notifies by itself.
The block is Prefect's ``CustomWebhookNotificationBlock`` pointed at the configured Slack Web
API (``DRP_SLACK_BASE_URL`` + ``chat.postMessage``), with the token kept in the block's
secrets (stored encrypted by Prefect, never in our logs or ledgers).

``setup`` is idempotent: the block is saved with ``overwrite``, and an automation with the
same name is replaced rather than duplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BLOCK_NAME = "drp-chatops-slack"
AUTOMATION_NAME = "drp-dr-flow-failed-or-crashed"
DR_FLOWS = ("failover", "resync", "failback", "drill", "replication-check", "manual-mode")

SUBJECT = "DR flow run {{ flow_run.name }}: {{ flow_run.state.name }}"
BODY = (
    "Flow {{ flow.name }}, run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}"
)


@dataclass(frozen=True)
class AlertSetup:
    block_name: str
    block_document_id: str
    automation_id: str
    automation_name: str
    flows: tuple[str, ...]
    channel: str
    replaced: bool

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "flows": list(self.flows)}


def notification_block(token: str, base_url: str, channel: str) -> Any:
    """Prefect's custom webhook block, speaking Slack's ``chat.postMessage``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = (base_url if base_url.endswith("/") else base_url + "/") + "chat.postMessage"
    return CustomWebhookNotificationBlock(
        name=BLOCK_NAME,
        url=url,
        method="POST",
        headers={
            "Authorization": "Bearer {{token}}",
            "Content-Type": "application/json; charset=utf-8",
        },
        json_data={"channel": channel, "text": ":rotating_light: {{subject}}\n{{body}}"},
        secrets={"token": token},
        timeout=10,
    )


def setup(token: str, base_url: str, channel: str, flows: tuple[str, ...] = DR_FLOWS) -> AlertSetup:
    """Save the block and (re)create the automation on the Prefect server in use."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification
    from prefect.client.orchestration import get_client

    block = notification_block(token, base_url, channel)
    block_id = block.save(BLOCK_NAME, overwrite=True)
    replaced = False
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(AUTOMATION_NAME):
            client.delete_automation(existing.id)
            replaced = True
    automation = Automation(
        name=AUTOMATION_NAME,
        description="ChatOps: tell the incident channel when a DR flow run fails or crashes",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": list(flows)},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    ).create()
    return AlertSetup(
        block_name=BLOCK_NAME,
        block_document_id=str(block_id),
        automation_id=str(automation.id),
        automation_name=AUTOMATION_NAME,
        flows=tuple(flows),
        channel=channel,
        replaced=replaced,
    )
