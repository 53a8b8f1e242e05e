# Steps 23-24: the registry host is your REPOSITORY's part before the first "/"
# (ACCOUNTID.dkr.ecr.us-west-2.amazonaws.com on AWS; 127.0.0.1:PORT in the sandbox).
aws ecr get-login-password --region $AWS_REGION | docker login --username AWS --password-stdin ${REPOSITORY%%/*}
