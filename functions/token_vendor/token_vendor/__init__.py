"""The AIC token vendor: one package; the handler is ``token_vendor.app.lambda_handler`` (template.yaml)."""
