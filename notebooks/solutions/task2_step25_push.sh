# Step 25: push the tagged image to your repository.
docker push $REPOSITORY
