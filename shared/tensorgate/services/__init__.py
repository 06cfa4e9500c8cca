"""Services: the logic, with their ports passed in (no boto3, no event parsing, no environment reads)."""
