"""Move dead-lettered deliveries back to the delivery queue: receive, send, delete.

(SQS's StartMessageMoveTask does this in the cloud; moto lacks it, and this works on both.)
Each message is deleted from the dead-letter queue only after the delivery queue accepted its
copy, so a failure half-way leaves a message in both queues at worst (delivered twice, same
webhook-id), never in neither. The copy starts a fresh back-off schedule.

    AWS_ENDPOINT_URL=… PYTHONPATH=layers/common python -m nps_sync.cli.redrive \\
        --from nps-sync-DeliveryDeadLetterQueue --to nps-sync-DeliveryQueue [--limit N]
"""

import argparse
import sys
from typing import Any

import boto3


def queue_url(sqs: Any, name_or_url: str) -> str:
    if name_or_url.startswith(("https://", "http://")):
        return name_or_url
    return sqs.get_queue_url(QueueName=name_or_url)["QueueUrl"]


def redrive(sqs: Any, source_url: str, target_url: str, limit: int | None = None) -> int:
    """Move up to ``limit`` messages (all, by default); returns how many moved."""
    moved = 0
    while limit is None or moved < limit:
        wanted = 10 if limit is None else max(1, min(10, limit - moved))
        messages = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=wanted,
            WaitTimeSeconds=0,
            VisibilityTimeout=60,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return moved
        entries = []
        for i, message in enumerate(messages):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        answer = sqs.send_message_batch(QueueUrl=target_url, Entries=entries)
        sent = {s["Id"] for s in answer.get("Successful", [])}
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if str(i) in sent
        ]
        if done:
            sqs.delete_message_batch(QueueUrl=source_url, Entries=done)
        moved += len(done)
        if len(done) < len(messages):
            raise RuntimeError(f"the delivery queue refused {len(messages) - len(done)} messages")
    return moved


def main(argv: list[str] | None = None, sqs: Any = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nps_sync.cli.redrive", description=__doc__)
    parser.add_argument("--from", dest="source", default="nps-sync-DeliveryDeadLetterQueue")
    parser.add_argument("--to", dest="target", default="nps-sync-DeliveryQueue")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    sqs = sqs or boto3.client("sqs")
    moved = redrive(sqs, queue_url(sqs, args.source), queue_url(sqs, args.target), args.limit)
    print(f"moved {moved} message(s) to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
