"""The local stack: the site, API Gateway and SageMaker Runtime tiers on localhost, no AWS needed."""
