"""The vocabulary every stage speaks: ARNs and secret references, IAM policy documents, problems, sensitive values.

Pure. Imports nothing of ``controller`` outside this package, and no boto3 or botocore.
"""
