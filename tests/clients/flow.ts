// An app's everyday flow through openapi-fetch typed by openapi-typescript's types of the OpenAPI
// document, against a running loyalty-local (scripts/clients compiles this with `tsc --strict`
// and runs it). Exits non-zero on the first broken expectation, saying which.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema.js";

type Event = components["schemas"]["Event"];
type Problem = components["schemas"]["ProblemDocument"];

const env = (name: string): string => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const baseUrl = env("LOYALTY_URL");
const store = env("LOYALTY_POS_STORE");
const run = Math.random().toString(16).slice(2, 10);
const admin = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${env("LOYALTY_ADMIN_TOKEN")}` } });
const pos = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${env("LOYALTY_POS_TOKEN")}` } });

function check(ok: boolean, what: string): asserts ok {
  if (!ok) {
    console.error(`typescript client flow: ${what}`);
    process.exit(1);
  }
  console.log(`typescript client: ${what}`);
}

// What each event type carries, read through its own type: the switch is exhaustive over the
// union the document declares, so a type missing from it would not compile.
function describe(e: Event): string {
  switch (e.type) {
    case "member.enrolled": return `enrolled at ${e.data.enrolled_at} as ${e.data.tier}`;
    case "member.updated": return `updated ${e.data.changed.join(",")}`;
    case "member.erased": return `erased, forfeit ${e.data.forfeited_points}`;
    case "points.earned": return `earned ${e.data.points} on ${e.data.receipt_id}`;
    case "points.pending": return `pending ${e.data.pending}`;
    case "points.available": return `available ${e.data.points}`;
    case "points.reversed":
      return e.data.ledger_kind === "refund" ? `refund reversed ${e.data.points} of ${e.data.refund_id}`
        : `campaign ${e.data.campaign_id} award reversed`;
    case "points.adjusted": return `adjusted ${e.data.points}`;
    case "points.redeemed": return `redeemed ${e.data.points}`;
    case "points.restored": return `restored ${e.data.points}`;
    case "points.expired": return `expired ${e.data.points}`;
    case "points.expiring_soon": return `expiring ${e.data.expiring_points}`;
    case "points.gifted": return `gifted ${e.data.points}`;
    case "tier.upgraded":
    case "tier.downgraded": return `tier ${e.data.from} → ${e.data.to}`;
    case "voucher.issued": return `voucher issued for ${e.data.reward_id}`;
    case "voucher.used": return `voucher used at ${e.data.store_id}`;
    case "segment.changed": return `segment → ${e.data.to.lifecycle}`;
    case "campaign.awarded": return `campaign ${e.data.campaign_id} awarded ${e.data.points}`;
    case "campaign.joined": return `campaign ${e.data.campaign_id} joined, ${e.data.group}${e.data.offer ? ` (${e.data.offer.kind})` : ""}`;
    case "referral.applied": return `referral applied`;
    case "referral.held":
    case "referral.rejected": return `referral ${e.data.rule}`;
    case "referral.rewarded": return `referral rewarded ${e.data.points}`;
    case "referral.reversed": return `referral reversed ${e.data.reversed}`;
    default: {
      const unknown: never = e;
      throw new Error(`an event type the document does not declare: ${JSON.stringify(unknown)}`);
    }
  }
}

async function main(): Promise<void> {
  // Enrol with an Idempotency-Key, then retry it: one member, the first answer replayed.
  const memberId = `ts-${run}`;
  const enrol = {
    params: { header: { "Idempotency-Key": `enrol-${run}` } },
    body: { name: "Ada Ts", id: memberId },
  };
  const first = await admin.POST("/v1/members", enrol);
  check(first.response.status === 201 && first.data !== undefined, "enrolled: 201 member");
  const email: string | null = first.data.email;
  check(email === null && first.data.tier === "silver", "the member's nullable fields are present (email null)");
  const again = await admin.POST("/v1/members", enrol);
  check(again.response.headers.get("Idempotent-Replayed") === "true" && again.data?.id === memberId,
    "the retried enrolment replays the first answer");

  const receipt = await pos.POST("/v1/purchases", {
    body: { member: { id: memberId }, store_id: store, receipt_id: `R-${run}`, amount: { value: 25000, currency: "USD" } },
  });
  check(receipt.data !== undefined && receipt.data.points_earned > 0, `purchase: ${receipt.data?.points_earned} points`);

  const ledger = await admin.GET("/v1/members/{id}/ledger", { params: { path: { id: memberId } } });
  check(ledger.data !== undefined && ledger.data.next_cursor === null, "ledger: one page");
  const line: components["schemas"]["LedgerEntry"] | undefined = ledger.data.items[0];
  check(line?.reference === `purchase:${store}/R-${run}`, "ledger: the purchase's line first");

  await admin.POST("/v1/members/{id}/adjustments", {
    params: { path: { id: memberId } }, body: { points: 500, reason: "welcome" },
  });
  const reward = await admin.PUT("/v1/rewards/{id}", {
    params: { path: { id: `tote-${run}` } }, body: { name: "Tote bag", cost_points: 100, stock: 10 },
  });
  check(reward.data?.stock === 10, "reward created");
  const redeemed = await admin.POST("/v1/members/{id}/redemptions", {
    params: { path: { id: memberId }, header: { "Idempotency-Key": `redeem-${run}` } },
    body: { reward_id: `tote-${run}` },
  });
  check(redeemed.data !== undefined && redeemed.data.cancelled_at === null, "redeemed");
  const used = await pos.POST("/v1/vouchers/{code}/use", {
    params: { path: { code: redeemed.data.voucher_code } }, body: { store_id: store },
  });
  check(used.data?.status === "used", "voucher used");

  const events = await admin.GET("/v1/members/{id}/events", { params: { path: { id: memberId }, query: { limit: 100 } } });
  check(events.data !== undefined, "events read");
  const kinds = new Set<string>();
  for (const e of events.data.items) {
    console.log(`typescript client: event ${e.seq} ${e.type}: ${describe(e)}`);
    kinds.add(e.type);
  }
  for (const t of ["member.enrolled", "points.earned", "points.adjusted", "points.redeemed", "voucher.issued", "voucher.used"]) {
    check(kinds.has(t), `the flow's ${t} event is in the feed`);
  }

  const audit = await admin.GET("/v1/audit", { params: { query: { member: memberId } } });
  const adjusted = audit.data?.items.find((r) => r.action === "points_adjusted");
  const change: unknown = adjusted?.changes.find((c) => c.field === "points")?.after;
  check(change === 500, "the adjustment's audit record, its value untyped (500)");

  const refused = await admin.POST("/v1/members/{id}/redemptions", {
    params: { path: { id: memberId } }, body: { reward_id: "no-such-reward" },
  });
  const problem: Problem | undefined = refused.error;
  check(refused.response.status === 404 && problem !== undefined && problem.type.startsWith("/problems/"),
    `refused: a typed problem ${problem?.type}`);
  console.log("typescript client flow: passed");
}

main().catch((e: unknown) => {
  console.error(`typescript client flow: ${String(e)}`);
  process.exit(1);
});
