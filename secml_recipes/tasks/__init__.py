"""What a model sees and must say: the specialist's prompt and report parts (`split`), the generalist's tools and
the simulated host that answers them (`tools`), the output contract and its checks (`validate`)."""
