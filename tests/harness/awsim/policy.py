"""An independent key-policy checker written from the IAM and KMS documentation (not from
crates/kms-policy): explicit Deny wins, else any Allow, else implicit deny; a statement applies
when principal, action and every condition match; operators and keys AND, values OR, negated
operators NOR and true when the key is absent, `IfExists` true when absent, `Null` tests
presence. Anything outside this subset makes the statement fail closed (Allow never matches,
Deny always matches) so that the front can never admit more than KMS would.

Run as `python policy.py CASES.json` to print one decision per case (for the cross-check test)."""

import fnmatch
import json
import sys

ATTESTATION_PREFIX = "kms:recipientattestation:"


class Unsupported(Exception):
    pass


def context_for(pcrs):
    """Condition context of a request: PCRs as lower-case hex, PCR0 also as ImageSha384."""
    if pcrs is None:
        return {}
    ctx = {f"{ATTESTATION_PREFIX}pcr{i}": value.hex() for i, value in pcrs.items()}
    if 0 in pcrs:
        ctx[f"{ATTESTATION_PREFIX}imagesha384"] = pcrs[0].hex()
    return ctx


def _listify(value):
    return value if isinstance(value, list) else [value]


def _principal_matches(principal_element, caller):
    if principal_element == "*":
        return True
    if not isinstance(principal_element, dict) or set(principal_element) != {"AWS"}:
        raise Unsupported("principal")
    for pattern in _listify(principal_element["AWS"]):
        if pattern == "*" or pattern == caller:
            return True
        parts, caller_parts = pattern.split(":", 5), caller.split(":", 5)
        if len(parts) == 1 and len(caller_parts) == 6 and caller_parts[4] == pattern:
            return True  # bare account id = that account's root
        if len(parts) != 6 or len(caller_parts) != 6 or parts[4] != caller_parts[4]:
            continue
        if parts[5] == "root":
            return True  # the account root delegates to the account's IAM policies
        if parts[5].startswith("role/") and caller_parts[2] == "sts":
            role_name = parts[5].rsplit("/", 1)[-1]
            if caller_parts[5].startswith(f"assumed-role/{role_name}/"):
                return True
    return False


def _action_matches(actions, action):
    return any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listify(actions))


def _condition_holds(operator, key, values, ctx):
    key = key.lower()
    values = [str(v) for v in _listify(values)]
    if operator == "Null":
        want_absent = values == ["true"]
        return (key not in ctx) == want_absent
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    compare = {
        "StringEquals": lambda a, v: a == v,
        "StringNotEquals": lambda a, v: a == v,
        "StringEqualsIgnoreCase": lambda a, v: a.lower() == v.lower(),
        "StringNotEqualsIgnoreCase": lambda a, v: a.lower() == v.lower(),
        "StringLike": lambda a, v: fnmatch.fnmatchcase(a, v),
        "StringNotLike": lambda a, v: fnmatch.fnmatchcase(a, v),
    }.get(base)
    if compare is None:
        raise Unsupported(operator)
    negated = "Not" in base
    if key not in ctx:
        return if_exists or negated
    matched = any(compare(ctx[key], v) for v in values)
    return matched != negated


def _statement_applies(statement, caller, action, ctx):
    if "NotPrincipal" in statement or "NotAction" in statement:
        raise Unsupported("NotPrincipal/NotAction")
    if not _principal_matches(statement.get("Principal"), caller):
        return False
    if not _action_matches(statement.get("Action", []), action):
        return False
    for operator, keys in statement.get("Condition", {}).items():
        for key, values in keys.items():
            if not _condition_holds(operator, key, values, ctx):
                return False
    return True


def evaluate(policy, caller, action, pcrs):
    """'allow' or 'deny' for `caller` doing `action` with attestation `pcrs` (None: no
    Recipient), plus the Sid that decided."""
    ctx = context_for(pcrs)
    allowing = []
    for statement in _listify(policy.get("Statement", [])):
        effect = statement.get("Effect")
        try:
            applies = _statement_applies(statement, caller, action, ctx)
        except Unsupported:
            applies = effect == "Deny"
        if applies and effect == "Deny":
            return "deny", statement.get("Sid")
        if applies and effect == "Allow":
            allowing.append(statement.get("Sid"))
    if allowing:
        return "allow", allowing[0]
    return "deny", None


def main(path):
    cases = json.load(open(path))["cases"]
    out = []
    for case in cases:
        pcrs = case.get("pcrs")
        pcrs = None if pcrs is None else {int(k): bytes.fromhex(v) for k, v in pcrs.items()}
        decision, _ = evaluate(case["policy"], case["principal"], case["action"], pcrs)
        out.append(decision)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
