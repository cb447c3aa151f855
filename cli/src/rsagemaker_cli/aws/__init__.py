"""Commands that push the images and create SageMaker jobs, models and endpoints (boto3)."""
