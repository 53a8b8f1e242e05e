# Step 22: tag the sample image with your repository URI (no tag after it: latest).
docker tag amazon/amazon-ecs-sample:latest $REPOSITORY
