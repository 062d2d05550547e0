# The container image (deploy/images): one image for every service, built by buildah without a daemon.
.PHONY: images images-test images-base images-clean

help::
	@echo "make images      build localhost/careloop:<version> with buildah (no Docker; the Debian base is made once)"
	@echo "                 and print its size"
	@echo "make images-test build it, export .artifacts/images/*.tar, start every service from it (read-only root,"
	@echo "                 uid 10001) on the local Kafka and PostgreSQL and check /healthz and /readyz"
	@echo "make images-base make the Debian base again (today's security fixes); make images-clean forgets the cache"

images:
	deploy/images/build.sh build

images-test: install
	deploy/images/build.sh test

images-base:
	CARELOOP_IMAGE_BASE_REFRESH=1 deploy/images/build.sh base

images-clean:
	deploy/images/build.sh clean
