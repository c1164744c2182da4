"""Using a trained model on a host: one generation interface for every model form (`generation`), `triage` of a
report, the tool-calling `agent`, the OpenAI-compatible `serve`r, and sys-scan-agent's `analyze` through our
provider (`agent_provider`)."""
