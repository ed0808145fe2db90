"""An app's everyday flow through the Python client openapi-python-client generates from the
OpenAPI document, against a running loyalty-local (scripts/clients runs it). Every answer is read
as its declared type; any status the document does not declare raises. Exits non-zero on the first
broken expectation, saying which."""

import os
import sys
import uuid

from loyalty_client import AuthenticatedClient
from loyalty_client.api.accrual import record_purchase
from loyalty_client.api.audit import list_audit_records
from loyalty_client.api.events import list_member_events
from loyalty_client.api.members import adjust_points, enrol_member, list_ledger
from loyalty_client.api.rewards import put_reward, redeem_reward, use_voucher
from loyalty_client import models

BASE = os.environ["LOYALTY_URL"]
run = uuid.uuid4().hex[:8]


def client(token: str) -> AuthenticatedClient:
    return AuthenticatedClient(base_url=BASE, token=token, raise_on_unexpected_status=True)


admin = client(os.environ["LOYALTY_ADMIN_TOKEN"])
pos = client(os.environ["LOYALTY_POS_TOKEN"])
STORE = os.environ["LOYALTY_POS_STORE"]


def check(ok: bool, what: str) -> None:
    if not ok:
        sys.exit(f"python client flow: {what}")
    print(f"python client: {what}")


def pascal(tag: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in tag.replace(".", "_").split("_"))


# Enrol with an Idempotency-Key, then retry it: one member, the first answer replayed.
member_id = f"py-{run}"
key = f"enrol-{run}"
body = models.EnrolRequest(name="Ada Py", id=member_id, email=f"ada-{run}@example.com")
first = enrol_member.sync_detailed(client=admin, body=body, idempotency_key=key)
again = enrol_member.sync_detailed(client=admin, body=body, idempotency_key=key)
check(first.status_code == 201 and isinstance(first.parsed, models.MemberView), "enrolled: 201 MemberView")
check(first.parsed.phone is None and first.parsed.email == f"ada-{run}@example.com",
      "MemberView's nullable fields are present: phone None, email set")
check(again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
      and again.parsed.id == member_id, "the retried enrolment replays the first answer")

# A purchase from the till, then the ledger.
receipt = record_purchase.sync(client=pos, body=models.PurchaseRequest(
    member=models.MemberRef(id=member_id), store_id=STORE, receipt_id=f"R-{run}",
    amount=models.Money(value=25_000, currency="USD")))
check(isinstance(receipt, models.PurchaseReceipt) and receipt.points_earned > 0,
      f"purchase: PurchaseReceipt, {receipt.points_earned} points")
ledger = list_ledger.sync(id=member_id, client=admin)
check(isinstance(ledger, models.ListResponseLedgerEntry) and ledger.next_cursor is None
      and all(isinstance(e, models.LedgerEntry) for e in ledger.items)
      and ledger.items[0].reference == f"purchase:{STORE}/R-{run}", "ledger: LedgerEntry items, newest first")

# An adjustment (audited), a reward, a redemption and its voucher used at the till.
adjust_points.sync(id=member_id, client=admin, body=models.AdjustmentRequest(points=500, reason="welcome"))
reward = put_reward.sync(id=f"tote-{run}", client=admin,
                         body=models.RewardInput(name="Tote bag", cost_points=100, stock=10))
check(isinstance(reward, models.RewardView) and reward.stock == 10, "reward: RewardView")
redeemed = redeem_reward.sync_detailed(id=member_id, client=admin,
                                       body=models.RedeemRequest(reward_id=f"tote-{run}"),
                                       idempotency_key=f"redeem-{run}")
check(redeemed.status_code == 201 and isinstance(redeemed.parsed, models.RedemptionReceipt)
      and redeemed.parsed.cancelled_at is None, "redeemed: RedemptionReceipt")
used = use_voucher.sync(code=redeemed.parsed.voucher_code, client=pos,
                        body=models.UseVoucherRequest(store_id=STORE))
check(isinstance(used, models.VoucherUse) and used.status == models.RedemptionStatus.USED, "voucher used: VoucherUse")

# Every event the flow made, each parsed into its own type.
page = list_member_events.sync(id=member_id, client=admin, limit=100)
check(isinstance(page, models.EventPage), "events: EventPage")
kinds = set()
for e in page.items:
    tag = e.type_.value
    expected = pascal(tag) + "Event"
    check(type(e).__name__ == expected, f"event {e.seq} {tag} parsed as {type(e).__name__}")
    kinds.add(tag)
for tag in ["member.enrolled", "points.earned", "points.adjusted", "points.redeemed",
            "voucher.issued", "voucher.used"]:
    check(tag in kinds, f"the flow's {tag} event is in the feed")
earned = next(e for e in page.items if isinstance(e, models.PointsEarnedEvent))
check(isinstance(earned.data, models.Earned) and earned.data.points == receipt.points_earned,
      "points.earned carries its typed payload")

# The audit trail: the adjustment, its changes' values untyped.
audit = list_audit_records.sync(client=admin, member=member_id)
check(isinstance(audit, models.AuditPage), "audit: AuditPage")
adjusted = [r for r in audit.items if r.action == models.AuditAction.POINTS_ADJUSTED]
check(len(adjusted) == 1 and all(isinstance(c, models.Change) for c in adjusted[0].changes),
      "the adjustment's audit record with its Changes")
check(any(c.field == "points" and c.after == 500 for c in adjusted[0].changes),
      "a change's value read back as it was written (500 points)")

# A refused request is a typed problem.
refused = redeem_reward.sync_detailed(id=member_id, client=admin,
                                      body=models.RedeemRequest(reward_id="no-such-reward"))
check(refused.status_code == 404 and isinstance(refused.parsed, models.ProblemDocument)
      and refused.parsed.type_.startswith("/problems/"), f"refused: ProblemDocument {refused.parsed.type_}")
print("python client flow: passed")
