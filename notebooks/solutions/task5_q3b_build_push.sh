# Your repository's URI (Task 1), as the aws CLI gives it.
REPOSITORY=$(aws ecr describe-repositories --repository-names myrepo --query 'repositories[0].repositoryUri' --output text)
# Build the changed page as $REPOSITORY:v2, log in (Task 2's line), push.
docker build -t $REPOSITORY:v2 my-app
aws ecr get-login-password --region $AWS_REGION | docker login --username AWS --password-stdin ${REPOSITORY%%/*}
docker push $REPOSITORY:v2
