# The Helm chart's offline validation (deploy/helm/validate.sh); tools cached outside the repository.
.PHONY: helm-tools helm-validate helm-schemas

help::
	@echo "make helm-tools     build helm and kubeconform from their Go modules into ~/.cache/careloop/tools"
	@echo "make helm-validate  helm lint --strict, helm template and kubeconform -strict, offline, for the"
	@echo "                    default, production and minimal values: rendered into .artifacts/helm/"
	@echo "make helm-schemas   regenerate the vendored schemas in deploy/helm/schemas (needs the network)"

helm-tools:
	deploy/helm/tools.sh install

helm-validate: helm-tools
	deploy/helm/validate.sh

helm-schemas:
	$(UV) run --no-project --with pyyaml --with kubernetes-validate==1.37.0 python deploy/helm/schemas/refresh.py
