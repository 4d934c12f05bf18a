"""The baseline cold start: a fresh interpreter that imports boto3 and creates one client."""

import boto3

boto3.client("dynamodb")
