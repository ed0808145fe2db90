#!/usr/bin/env python3
"""Writes events/<function>/<case>.<expected>.json: API Gateway HTTP API (v2) events with JWT
authorizer claims, one per route and role that matters, plus the scheduled inputs. The expected
status is in the file name; tests/api/events.rs replays every file against a seeded store with the
clock at NOW, so the samples never rot. `cargo lambda invoke <fn> --data-file <file>` takes them
as they are. Re-run after changing a case: python3 scripts/make_events.py"""
import json
import pathlib
import uuid
from datetime import datetime, timezone

NOW = "2026-11-22T10:15:00Z"
root = pathlib.Path(__file__).resolve().parent.parent / "events"

MEMBER = lambda sub: {"sub": sub, "scope": "openid"}
POS = lambda store: {"sub": f"pos-{store}", "scope": "loyalty/pos", "store_id": store}
ADMIN = {"sub": "admin", "scope": "loyalty/admin"}

PURCHASE_1001 = {"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-1001",
                 "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T09:30:00Z"}


WIN_BACK = {"name": "Win back dormant members", "audience": ["lifecycle:dormant", "value:at_risk"],
            "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2027-01-01T00:00:00Z",
            "offer": {"kind": "bonus", "points": 200, "min_spend": {"value": 2000, "currency": "USD"}},
            "per_member_limit": 1, "budget_points": 100000, "holdout_percent": 20}


# What the webhooks function receives: an SQS message whose body is the EventBridge event the
# pipe made of a DynamoDB stream record (an inserted event carrier, in DynamoDB JSON).
_ENROLLED = {"M": {
    "id": {"S": "01935b2e-6a00-7000-8000-000000000001"}, "type": {"S": "member.enrolled"},
    "occurred_at": {"S": NOW}, "member_id": {"S": "member-ada"}, "seq": {"N": "1"},
    "data": {"M": {"tier": {"S": "silver"}, "enrolled_at": {"S": NOW}}}}}
SQS_BATCH = {"Records": [{
    "messageId": "5f1c0d1e-0000-4000-8000-000000000001", "receiptHandle": "AQEB…",
    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795342500000",
                   "SenderId": "AIDAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1795342500000"},
    "messageAttributes": {}, "md5OfBody": "0", "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:loyalty-webhooks", "awsRegion": "us-east-1",
    "body": json.dumps({
        "version": "0", "id": "7bf73129-1428-4cd3-a780-95db273d1602", "detail-type": "Event from aws.dynamodb",
        "source": "loyalty.events", "account": "123456789012", "time": NOW, "region": "us-east-1", "resources": [],
        "detail": {"eventName": "INSERT", "eventSource": "aws:dynamodb", "dynamodb": {
            "Keys": {"PK": {"S": "MEMBER#member-ada"}, "SK": {"S": "EVENT#000000000001"}},
            "NewImage": {"PK": {"S": "MEMBER#member-ada"}, "SK": {"S": "EVENT#000000000001"},
                         "events": {"L": [_ENROLLED]}, "expires_at": {"N": "1797934500"}, "version": {"N": "1"}}}}}),
}]}


def event(method, path, claims, body=None, headers=None, query=""):
    t = datetime.strptime(NOW, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    route = f"{method} {path}"
    ctx = {
        "accountId": "123456789012", "apiId": "loyalty", "domainName": "api.example.com",
        "domainPrefix": "api", "requestId": str(uuid.uuid5(uuid.NAMESPACE_URL, route + str(claims))),
        "routeKey": route, "stage": "$default", "time": t.strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "timeEpoch": int(t.timestamp() * 1000),
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.10",
                 "userAgent": "loyalty-app/1.0"},
    }
    if claims is not None:
        ctx["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    h = {"content-type": "application/json", "host": "api.example.com"}
    h.update(headers or {})
    e = {"version": "2.0", "routeKey": route, "rawPath": path, "rawQueryString": query,
         "headers": h, "requestContext": ctx, "isBase64Encoded": False}
    if body is not None:
        e["body"] = json.dumps(body)
    return e


cases = {
    "members": {
        "enrol-self.201": event("POST", "/v1/members", MEMBER("member-grace"),
                                {"name": "Grace", "phone": "+14155550123", "birthday": "12-09", "timezone": "America/New_York"}),
        "enrol-by-pos.201": event("POST", "/v1/members", POS("store-1"), {"id": "0193a0b4-7c1e-7d30-9a51-5b2f8f2c1d99", "name": "Walk-in"}),
        "enrol-by-pos-non-uuid-id.422": event("POST", "/v1/members", POS("store-1"), {"id": "auth0|someone", "name": "Squatter"}),
        "enrol-existing.409": event("POST", "/v1/members", MEMBER("member-ada"), {"name": "Ada"}),
        "enrol-impossible-birthday.400": event("POST", "/v1/members", MEMBER("member-new"), {"name": "New", "birthday": "02-30"}),
        "enrol-unknown-field.400": event("POST", "/v1/members", MEMBER("member-new"), {"name": "New", "nickname": "n"}),
        "get-self.200": event("GET", "/v1/members/member-ada", MEMBER("member-ada")),
        "events-self.200": event("GET", "/v1/members/member-ada/events", MEMBER("member-ada"), query="after_seq=0&limit=20"),
        "events-other-member.403": event("GET", "/v1/members/member-ada/events", MEMBER("member-bob")),
        "all-events-by-admin.200": event("GET", "/v1/events", ADMIN, query="from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"),
        "all-events-by-member.403": event("GET", "/v1/events", MEMBER("member-ada"), query="from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z"),
        "erase-self.200": event("DELETE", "/v1/members/member-bob", MEMBER("member-bob"), headers={"idempotency-key": "erase-1"}),
        "erase-other-member.403": event("DELETE", "/v1/members/member-ada", MEMBER("member-bob")),
        "get-by-pos.200": event("GET", "/v1/members/member-ada", POS("store-1")),
        "get-other-member.403": event("GET", "/v1/members/member-ada", MEMBER("member-bob")),
        "get-without-token.401": event("GET", "/v1/members/member-ada", None),
        "get-unknown.404": event("GET", "/v1/members/member-nobody", ADMIN),
        "patch-self.200": event("PATCH", "/v1/members/member-ada", MEMBER("member-ada"), {"name": "Ada L.", "email": "ada@example.com"}),
        "patch-birthday-again.409": event("PATCH", "/v1/members/member-ada", MEMBER("member-ada"), {"birthday": "12-10"}),
        "patch-birthday-by-admin.200": event("PATCH", "/v1/members/member-ada", ADMIN, {"birthday": "1990-12-10"}),
        "ledger-self.200": event("GET", "/v1/members/member-ada/ledger", MEMBER("member-ada"), query="limit=10"),
        "ledger-other-member.403": event("GET", "/v1/members/member-ada/ledger", MEMBER("member-bob")),
        "points-self.200": event("GET", "/v1/members/member-ada/points", MEMBER("member-ada")),
        "points-by-pos.200": event("GET", "/v1/members/member-ada/points", POS("store-1")),
        "points-other-member.403": event("GET", "/v1/members/member-ada/points", MEMBER("member-bob")),
        "adjustment-by-admin.201": event("POST", "/v1/members/member-ada/adjustments", ADMIN,
                                         {"points": 50, "reason": "service recovery"}, {"idempotency-key": "recovery-ada-1"}),
        "adjustment-by-member.403": event("POST", "/v1/members/member-ada/adjustments", MEMBER("member-ada"), {"points": 50, "reason": "x"}),
    },
    "accrual": {
        "purchase-by-id.201": event("POST", "/v1/purchases", POS("store-1"),
                                    {"member": {"id": "member-ada"}, "store_id": "store-1", "receipt_id": "R-2001",
                                     "amount": {"value": 1999, "currency": "USD"}, "occurred_at": "2026-11-22T10:14:00+00:00",
                                     "lines": [{"sku": "TEA-001", "category": "drinks", "quantity": 2, "amount": {"value": 1999, "currency": "USD"}}]}),
        "purchase-by-phone.201": event("POST", "/v1/purchases", POS("store-1"),
                                       {"member": {"phone": "+8613800000000"}, "store_id": "store-1", "receipt_id": "R-2002",
                                        "amount": {"value": 5000, "currency": "USD"}, "occurred_at": "2026-11-22T18:10:00+08:00"}),
        "purchase-replayed.201": event("POST", "/v1/purchases", POS("store-1"), PURCHASE_1001),
        "purchase-receipt-conflict.409": event("POST", "/v1/purchases", POS("store-1"), {**PURCHASE_1001, "amount": {"value": 2999, "currency": "USD"}}),
        "purchase-other-store.403": event("POST", "/v1/purchases", POS("store-2"), {**PURCHASE_1001, "receipt_id": "R-3001"}),
        "purchase-by-member.403": event("POST", "/v1/purchases", MEMBER("member-ada"), {**PURCHASE_1001, "receipt_id": "R-3002"}),
        "purchase-wrong-currency.422": event("POST", "/v1/purchases", POS("store-1"),
                                             {**PURCHASE_1001, "receipt_id": "R-3003", "amount": {"value": 1999, "currency": "EUR"}}),
        "purchase-too-old.422": event("POST", "/v1/purchases", POS("store-1"),
                                      {**PURCHASE_1001, "receipt_id": "R-3004", "occurred_at": "2026-01-01T00:00:00Z"}),
        "purchase-unknown-member.404": event("POST", "/v1/purchases", POS("store-1"),
                                             {**PURCHASE_1001, "receipt_id": "R-3005", "member": {"id": "member-nobody"}}),
        "refund-partial.201": event("POST", "/v1/purchases/store-1/R-1001/refunds", POS("store-1"),
                                    {"refund_id": "RF-1", "amount": {"value": 999, "currency": "USD"}}),
        "refund-exceeding.422": event("POST", "/v1/purchases/store-1/R-1001/refunds", POS("store-1"),
                                      {"refund_id": "RF-2", "amount": {"value": 2000, "currency": "USD"}}),
        "refund-unknown-receipt.404": event("POST", "/v1/purchases/store-1/R-9999/refunds", POS("store-1"),
                                            {"refund_id": "RF-3", "amount": {"value": 100, "currency": "USD"}}),
    },
    "tiers": {
        "tier-self.200": event("GET", "/v1/members/member-ada/tier", MEMBER("member-ada")),
        "tier-by-pos.200": event("GET", "/v1/members/member-ada/tier", POS("store-1")),
        "tier-other-member.403": event("GET", "/v1/members/member-ada/tier", MEMBER("member-bob")),
    },
    "tier-requalification": {
        "daily.ok": {},
        "backfill.ok": {"now": NOW},
    },
    "points-job": {
        "daily.ok": {},
        "backfill.ok": {"now": NOW},
    },
    "redemption": {
        "catalog.200": event("GET", "/v1/rewards", MEMBER("member-ada")),
        "put-reward-by-admin.201": event("PUT", "/v1/rewards/birthday-cake", ADMIN,
                                         {"name": "Birthday cake", "description": "A slice on us", "cost_points": 0,
                                          "min_tier": "silver", "stock": 500, "per_member_limit": 1, "active": True}),
        "put-reward-by-member.403": event("PUT", "/v1/rewards/birthday-cake", MEMBER("member-ada"), {"name": "x", "cost_points": 1}),
        "redeem.201": event("POST", "/v1/members/member-ada/redemptions", MEMBER("member-ada"), {"reward_id": "free-coffee"},
                            {"idempotency-key": "tap-1"}),
        "redeem-insufficient-points.409": event("POST", "/v1/members/member-bob/redemptions", MEMBER("member-bob"), {"reward_id": "free-coffee"}),
        "redeem-for-another-member.403": event("POST", "/v1/members/member-ada/redemptions", MEMBER("member-bob"), {"reward_id": "free-coffee"}),
        "list-redemptions.200": event("GET", "/v1/members/member-ada/redemptions", MEMBER("member-ada")),
        "cancel-unknown.404": event("POST", f"/v1/members/member-ada/redemptions/{uuid.UUID(int=1)}/cancel", MEMBER("member-ada")),
        "use-voucher.200": event("POST", "/v1/vouchers/{{voucher_code}}/use", POS("store-1"), {"store_id": "store-1"}),
        "use-voucher-for-other-store.403": event("POST", "/v1/vouchers/{{voucher_code}}/use", POS("store-1"), {"store_id": "store-2"}),
        "use-unknown-voucher.404": event("POST", "/v1/vouchers/ZZZZZZZZZZZZ/use", POS("store-1"), {"store_id": "store-1"}),
    },
    "birthday": {
        "hourly.ok": {},
        "backfill.ok": {"now": NOW},
    },
    "webhooks": {
        "sqs-batch.ok": SQS_BATCH,
    },
    "segments": {
        "segments-by-admin.200": event("GET", "/v1/segments", ADMIN),
        "segments-by-member.403": event("GET", "/v1/segments", MEMBER("member-ada")),
        "new-members.200": event("GET", "/v1/segments/lifecycle:new/members", ADMIN, query="limit=20"),
        "unknown-segment.404": event("GET", "/v1/segments/lifecycle:sleepy/members", ADMIN),
        "history.200": event("GET", "/v1/segments/lifecycle:dormant/history", ADMIN, query="from=2026-11-01&to=2026-11-30"),
        "history-reversed.422": event("GET", "/v1/segments/lifecycle:dormant/history", ADMIN, query="from=2026-11-30&to=2026-11-01"),
        "overview.200": event("GET", "/v1/analytics/overview", ADMIN),
        "retention.200": event("GET", "/v1/analytics/retention", ADMIN, query="months=6"),
        "retention-too-long.422": event("GET", "/v1/analytics/retention", ADMIN, query="months=24"),
    },
    # The state machine's steps, and a whole run in one invocation.
    "campaigns": {
        "put-draft-by-admin.201": event("PUT", "/v1/campaigns/win-back-dormant", ADMIN, WIN_BACK),
        "put-draft-by-pos.403": event("PUT", "/v1/campaigns/win-back-dormant", POS("store-1"), WIN_BACK),
        "put-ends-before-start.422": event("PUT", "/v1/campaigns/win-back-dormant", ADMIN,
                                          {**WIN_BACK, "ends_at": "2026-11-01T00:00:00Z"}),
        "put-unknown-segment.422": event("PUT", "/v1/campaigns/win-back-dormant", ADMIN,
                                         {**WIN_BACK, "audience": ["lifecycle:sleepy"]}),
        "put-launched.409": event("PUT", "/v1/campaigns/double-drinks", ADMIN, WIN_BACK),
        "list.200": event("GET", "/v1/campaigns", ADMIN, query="limit=20"),
        "get.200": event("GET", "/v1/campaigns/double-drinks", ADMIN),
        "get-unknown.404": event("GET", "/v1/campaigns/nope", ADMIN),
        "launch.200": event("POST", "/v1/campaigns/spring-draft/launch", ADMIN, {}),
        "launch-again.409": event("POST", "/v1/campaigns/double-drinks/launch", ADMIN, {}),
        "end.200": event("POST", "/v1/campaigns/double-drinks/end", ADMIN, {}),
        "end-draft.409": event("POST", "/v1/campaigns/spring-draft/end", ADMIN, {}),
        "results.200": event("GET", "/v1/campaigns/double-drinks/results", ADMIN),
        "results-of-draft.409": event("GET", "/v1/campaigns/spring-draft/results", ADMIN),
        "results-by-member.403": event("GET", "/v1/campaigns/double-drinks/results", MEMBER("member-ada")),
    },
    "segments-job": {
        "nightly.ok": {},
        "backfill.ok": {"now": NOW},
        "part.ok": {"run": "sample-run", "part": 1, "parts": 4, "now": NOW},
    },
}

for function, files in cases.items():
    d = root / function
    d.mkdir(parents=True, exist_ok=True)
    for old in d.glob("*.json"):
        old.unlink()
    for name, e in files.items():
        (d / f"{name}.json").write_text(json.dumps(e, indent=2) + "\n")
print(f"wrote {sum(len(f) for f in cases.values())} events under {root}")
