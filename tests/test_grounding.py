"""The invented-name check: identifiers in a report's prose against the input part and the reference."""

import json

from secml_recipes.evaluation.grounding import claim_texts, grounding_summary, identifiers, ungrounded
from secml_recipes.evaluation.specialist_metrics import score_specialist
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.split import split_report


def test_identifiers_are_paths_dotted_and_snake_case_names_not_prose():
    text = (
        "net.ipv4.conf.all.rp_filter = 2 is the default (see 50-default.conf), e.g. for /usr/bin/ping "
        "with cap_net_raw=ep; ssh.service runs. Expected, no action."
    )
    assert identifiers(text) == [
        "/usr/bin/ping",
        "net.ipv4.conf.all.rp_filter",
        "50-default.conf",
        "ssh.service",
        "cap_net_raw",
    ]
    assert identifiers("Expected, no action. Risk is low.") == []


def _part_and_reference():
    report = generate_report(next(iter(plan_hosts(3, 2))))
    part, reference = next((p, r) for p, r in split_report(report, 2500) if r["enriched_findings"])
    return part, reference


def test_names_from_the_scan_or_the_reference_are_grounded_and_invented_ones_are_counted():
    part, reference = _part_and_reference()
    fid = reference["enriched_findings"][0]["id"]
    faithful = json.loads(json.dumps(reference))
    faithful["enriched_findings"][0]["rationale"] = [f"{fid} is listed by the scanner."]
    named, missing = ungrounded(faithful, part, reference)
    assert missing == [] and named >= 1
    invented = json.loads(json.dumps(faithful))
    invented["enriched_findings"][0]["rationale"] = ["kernel_param_filter: /usr/sbin/iputils-filterd checks it."]
    named, missing = ungrounded(invented, part, reference)
    assert set(missing) == {"kernel_param_filter", "/usr/sbin/iputils-filterd"}
    # the reference's own prose is grounded by construction; against the input alone it may not be
    assert ungrounded(reference, part, reference)[1] == []
    summary = grounding_summary([(invented, part, reference), (None, part, reference)])
    assert summary["ungrounded_identifiers"] == 2 and 0 < summary["ungrounded_rate"] <= 1
    assert grounding_summary([(None, part, reference)])["ungrounded_rate"] is None
    assert claim_texts({"enriched_findings": "not a list"}) == []


def test_the_specialist_score_reports_the_invented_name_rate():
    part, reference = _part_and_reference()
    invented = json.loads(json.dumps(reference))
    for f in invented["enriched_findings"]:
        f["rationale"] = ["/opt/made-up/bin/tool is stock."]
    invented["summaries"]["executive_summary"] = "Nothing to see."
    invented["summaries"]["analyst"]["risk_reasons"] = ["low"]
    scores = score_specialist([json.dumps(invented)], [reference], [part])
    assert scores["ungrounded_rate"] == 1.0
    assert score_specialist([json.dumps(reference)], [reference], [part])["ungrounded_rate"] == 0.0
    assert score_specialist([json.dumps(reference)], [reference])["ungrounded_rate"] is None
