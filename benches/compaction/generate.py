#!/usr/bin/env python3
"""Writes a deterministic history of one busy organization, `acme`, as 5-minute runs of the
collector would have left it in a local output folder, for benches/compaction/run.py.

    python3 benches/compaction/generate.py /tmp/bench20 --days 90 --events-per-day 2000

Each day gets --events-per-day events (more in working hours), and each 5-minute slot of the
day that has events becomes one object, as the run covering that slot writes it:
<out>/org=acme/dt=YYYY-MM-DD/<first event's YYYYmmddTHHMMSSZ>-<20 hex>.json.gz, gzip (level 6,
mtime 0) of NDJSON records in the tool's shape (keys sorted, compact JSON, a `collector`
object, `data` a map of strings), oldest event first. The 20 hex are the tool's: the first
10 bytes of SHA-256 over the sorted event ids, each followed by a newline. The days end on
2026-03-31; the same --seed gives the same bytes. It also writes the output's id and a
checkpoint of `acme` whose verified span covers every day, as a clean `verify` would leave
it, so that `dockerhub-audit compact --org acme --output <out>` takes them all.
"""
import argparse
import datetime
import gzip
import hashlib
import json
import pathlib
import random
import sys

ORG = "acme"
LAST_DAY = datetime.date(2026, 3, 31)
SLOT = 300  # seconds

USERS = ["jdoe", "asmith", "lwilson", "priya-ops", "mgarcia", "kchen"]
TOKENS = ["ci-token", "gha-publish", "release-bot", "terraform-ro"]
MEMBERS = ["dlee", "sjohnson", "afischer", "yamada-k", "tnguyen", "rpatel", "omartin"]
TEAMS = ["developers", "security", "ops", "qa"]
REPOS = ["acme/web", "acme/api", "acme/gateway", "acme/base-images", "acme/billing-svc",
         "acme/ml-runner", "acme/docs", "acme/worker"]
REGISTRIES = ["ghcr.io", "registry.gitlab.com", "quay.io"]
SCOPES = ["scope-activity-read,repo-pull", "repo-pull,repo-push", "repo-admin"]

# (action, weight). repo.tag.push dominates, as it does for a busy organization.
ACTIONS = [
    ("repo.tag.push", 700), ("repo.tag.delete", 40), ("repo.create", 12), ("repo.delete", 6),
    ("repo.update", 15), ("repo.change_privacy", 6), ("repo.category.updated", 4),
    ("repo.immutable.tags.updated", 3),
    ("org.member.add", 8), ("org.member.remove", 6), ("org.member.invite.send", 8),
    ("org.member.role.change", 4), ("org.team.member.add", 8), ("org.team.member.remove", 5),
    ("org.team.create", 2), ("org.team.update", 3), ("org.team.delete", 1),
    ("org.access_token.create", 4), ("org.access_token.update", 3), ("org.access_token.delete", 3),
    ("org.settings.update", 3),
    ("org.registry_access.enabled", 1), ("org.registry_access.disabled", 1),
    ("org.registry_access.registry_added", 2), ("org.registry_access.registry_removed", 1),
    ("enterprise.sso.connection.create", 1), ("enterprise.sso.connection.update", 2),
    ("enterprise.sso.connection.delete", 1), ("enterprise.sso.connection.enforcement_toggle", 1),
    ("enterprise.sso.connection.scim_toggle", 1),
    ("org.domain.create", 1), ("org.domain.verify", 1), ("org.domain.delete", 1),
    ("billing.plan.seat_add", 2), ("billing.plan.seat_remove", 1),
    ("offload.lease.start", 4), ("offload.lease.end", 4),
    ("oidc.connection.create", 1), ("oidc.connection.update", 1),
]
ACTION_NAMES = [a for a, _ in ACTIONS]
ACTION_WEIGHTS = [w for _, w in ACTIONS]


def hexs(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def event(rng, action):
    """(actor, category, name, description, data) of one event of `action`."""
    user = rng.choice(USERS)
    repo = rng.choice(REPOS)
    member = rng.choice(MEMBERS)
    team = rng.choice(TEAMS)
    token = rng.choice(TOKENS)
    category = action.split(".")[0]
    if action == "repo.tag.push":
        actor = rng.choices(TOKENS + USERS + ["dockersupport"], [30, 25, 20, 5] + [4] * 6 + [1])[0]
        tag = f"v{rng.randint(1, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 40)}"
        digest = "sha256:" + hexs(rng, 64)
        return (actor, category, repo,
                f"pushed the tag {tag} with the digest {digest[:20]} to the repository {repo}",
                {"digest": digest, "tag": tag})
    actor = rng.choices(USERS + ["dockersupport"] + TOKENS, [10] * 6 + [1] + [2] * 4)[0]
    if action == "repo.tag.delete":
        tag = f"v1.{rng.randint(0, 20)}.{rng.randint(0, 40)}"
        return actor, category, repo, f"deleted the tag {tag} from the repository {repo}", {"tag": tag}
    if action == "repo.create":
        vis = rng.choice(["public", "private"])
        return actor, category, repo, f"created the {vis} repository {repo}", {"visibility": vis}
    if action == "repo.delete":
        return actor, category, repo, f"deleted the repository {repo}", {"reason": "cleanup"}
    if action == "repo.update":
        field = rng.choice(["description", "full_description"])
        return actor, category, repo, f"updated the {field} of the repository {repo}", {"field": field}
    if action == "repo.change_privacy":
        p = rng.choice(["public", "private"])
        return actor, category, repo, f"changed the repository {repo} to {p}", {"privacy": p}
    if action == "repo.category.updated":
        return (actor, category, repo, f"updated the categories of the repository {repo}",
                {"categories": "developer-tools,web-servers"})
    if action == "repo.immutable.tags.updated":
        return (actor, category, repo, f"enabled tag immutability for the repository {repo}",
                {"immutable_tags": "true", "rules": "^v.*"})
    if action == "org.member.add":
        return actor, category, member, f"added {member} to the organization {ORG}", {"role": "member"}
    if action == "org.member.remove":
        return (actor, category, member, f"removed {member} from the organization {ORG}",
                {"role": rng.choice(["member", "editor"])})
    if action == "org.member.invite.send":
        return (actor, category, member, f"invited {member} to the organization {ORG}",
                {"invitee": member, "role": "member"})
    if action == "org.member.role.change":
        return (actor, category, member, f"changed the role of {member} from member to editor",
                {"from": "member", "to": "editor"})
    if action == "org.team.member.add":
        return actor, category, member, f"added {member} to the team {team}", {"team": team}
    if action == "org.team.member.remove":
        return actor, category, member, f"removed {member} from the team {team}", {"team": team}
    if action.startswith("org.team."):
        verb = {"create": "created", "update": "updated", "delete": "deleted"}[action.split(".")[2]]
        return actor, category, ORG, f"{verb} the team {team}", {"team": team}
    if action.startswith("org.access_token."):
        verb = {"create": "created", "update": "updated", "delete": "deleted"}[action.split(".")[2]]
        return (actor, category, ORG, f"{verb} the organization access token {token}",
                {"scopes": rng.choice(SCOPES), "token_label": token})
    if action == "org.settings.update":
        return (actor, category, ORG,
                "changed the organization setting default_repo_visibility from public to private",
                {"new_value": "private", "old_value": "public", "setting": "default_repo_visibility"})
    if action in ("org.registry_access.enabled", "org.registry_access.disabled"):
        verb = action.rsplit(".", 1)[1]
        return actor, category, ORG, f"{verb} Registry Access Management", {"enforced": "true" if verb == "enabled" else "false"}
    if action.startswith("org.registry_access.registry_"):
        reg = rng.choice(REGISTRIES)
        verb = action.rsplit("_", 1)[1]
        return (actor, category, ORG, f"{verb} the registry {reg} in Registry Access Management",
                {"registry": reg})
    if action.startswith("enterprise.sso.connection."):
        what = action.rsplit(".", 1)[1]
        data = {"connection_name": "acme-okta", "connection_type": "SAML"}
        if what.endswith("_toggle"):
            on = rng.choice(["true", "false"])
            data["enabled"] = on
            word = "SSO enforcement" if what.startswith("enforcement") else "SCIM"
            desc = f"turned {word} {'on' if on == 'true' else 'off'} on the SSO connection acme-okta"
        else:
            desc = f"{what}d the SSO connection acme-okta"
        return actor, category, ORG, desc, data
    if action.startswith("org.domain."):
        verb = {"create": "added", "verify": "verified", "delete": "removed"}[action.rsplit(".", 1)[1]]
        return actor, category, ORG, f"{verb} the domain acme.example.com", {"domain": "acme.example.com"}
    if action.startswith("billing.plan.seat_"):
        n = str(rng.randint(1, 50))
        verb = "added" if action.endswith("add") else "removed"
        return actor, category, ORG, f"{verb} {n} seats", {"seats": n}
    if action.startswith("offload.lease."):
        lease = hexs(rng, 16)
        verb = "started" if action.endswith("start") else "ended"
        return actor, category, ORG, f"{verb} the Offload lease {lease}", {"lease_id": lease}
    if action.startswith("oidc.connection."):
        verb = action.rsplit(".", 1)[1] + "d"
        return (actor, category, ORG, f"{verb} the OIDC connection github-actions",
                {"connection_name": "github-actions", "issuer": "https://token.actions.githubusercontent.com"})
    raise ValueError(action)


def rfc3339(t, micros=False):
    if micros and t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--events-per-day", type=int, default=2000)
    ap.add_argument("--runs-per-day", type=int, default=288, help="5-minute slots per day (288)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = pathlib.Path(args.out)
    slot = 86400 // args.runs_per_day
    # More events in working hours (07:00-19:00 UTC) than at night, none never.
    hour_weights = [1 if h < 7 or h >= 19 else 4 for h in range(24)]
    objects = events = size = 0
    for d in range(args.days):
        day = LAST_DAY - datetime.timedelta(days=args.days - 1 - d)
        midnight = datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc)
        folder = out / f"org={ORG}" / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        stamps = []
        for _ in range(args.events_per_day):
            hour = rng.choices(range(24), hour_weights)[0]
            secs = hour * 3600 + rng.randrange(3600)
            # About one event in 20 carries milliseconds, as some of Docker Hub's do.
            millis = rng.randrange(1, 1000) if rng.random() < 0.05 else 0
            stamps.append(midnight + datetime.timedelta(seconds=secs, milliseconds=millis))
        stamps.sort()
        by_slot = {}
        for t in stamps:
            by_slot.setdefault(int((t - midnight).total_seconds()) // slot, []).append(t)
        for k in sorted(by_slot):
            window_from = midnight + datetime.timedelta(seconds=k * slot)
            window_to = window_from + datetime.timedelta(seconds=slot)
            ran = window_to + datetime.timedelta(seconds=rng.randint(60, 90))
            collector = {
                "ingested_at": ran.strftime("%Y-%m-%dT%H:%M:%S.") + f"{rng.randrange(10**9):09d}Z",
                "run_id": hexs(rng, 16),
                "window_from": rfc3339(window_from),
                "window_to": rfc3339(window_to),
            }
            lines, ids = [], []
            for t in by_slot[k]:
                action = rng.choices(ACTION_NAMES, ACTION_WEIGHTS)[0]
                actor, category, name, desc, data = event(rng, action)
                eid = hexs(rng, 32)
                ids.append(eid)
                record = {
                    "account": ORG, "action": action, "action_description": desc, "actor": actor,
                    "category": category, "collector": collector, "data": data, "event_id": eid,
                    "name": name, "org": ORG, "timestamp": rfc3339(t, micros=True),
                }
                lines.append(json.dumps(record, sort_keys=True, separators=(",", ":")))
            h = hashlib.sha256()
            for i in sorted(ids):
                h.update(i.encode() + b"\n")
            key = f"{by_slot[k][0].strftime('%Y%m%dT%H%M%SZ')}-{h.hexdigest()[:20]}.json.gz"
            body = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=6, mtime=0)
            (folder / key).write_bytes(body)
            objects += 1
            events += len(lines)
            size += len(body)
    first = LAST_DAY - datetime.timedelta(days=args.days - 1)
    end = datetime.datetime.combine(LAST_DAY + datetime.timedelta(days=1), datetime.time(), datetime.timezone.utc)
    output_id = f"local:{hexs(rng, 16)}"
    if not (out / "_output-id").exists():
        (out / "_output-id").write_text(output_id + "\n")
    output_id = (out / "_output-id").read_text().strip()
    stamp = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")
    checkpoint = {
        "org": ORG, "version": 1,
        "watermark": stamp(end + datetime.timedelta(hours=1)),
        "seen_from": stamp(end + datetime.timedelta(hours=1)),
        "seen": {}, "pending": None, "last_run": None, "output": output_id, "quarantined": 0,
        "recent": [],
        "verified": {"from": f"{first.isoformat()}T00:00:00Z", "to": stamp(end),
                     "at": stamp(end + datetime.timedelta(hours=2))},
    }
    (out / "_checkpoints").mkdir(exist_ok=True)
    (out / "_checkpoints" / f"{ORG}.json").write_text(json.dumps(checkpoint, indent=2) + "\n")
    print(f"{out}: {args.days} days, {objects} objects, {events} events, {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
