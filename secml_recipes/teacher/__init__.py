"""The analyst that writes the reference answers: how a host is judged (`assess`), what findings mean together
(`correlate`), what the scan did not look at (`coverage`), and the enriched report (`enrich`). Its security knowledge
lives in `knowledge/`. No torch: the teacher runs anywhere the scanner's output does."""
