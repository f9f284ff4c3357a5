"""The rules, pure Python, no I/O.

Nothing here imports prefect, psycopg, paramiko, boto3, slack_sdk, openpyxl or ansible_runner
(a test guards it). Functions take plain values and return decisions, each with a reason.
"""
