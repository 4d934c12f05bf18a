"""AIC: the token endpoint and the assertion it takes."""
