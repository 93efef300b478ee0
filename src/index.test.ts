import assert from "node:assert/strict";
import { it } from "node:test";
import { connectBus, type Delivery } from "./index.ts";

it("connectBus: an in-process bus with the appliance's defaults, sealed and verified", async () => {
  const bus = await connectBus({ keys: [{ id: "k1", secret: "library-bus-secret-0123456789abcdef" }] });
  const got: Delivery[] = [];
  await bus.subscribe("jobs", (d) => void got.push(d));
  const { eventId } = await bus.publish("jobs", { task: "index" });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(got.length, 1);
  assert.equal(got[0]!.eventId, eventId);
  assert.equal(got[0]!.kid, "k1");
  assert.equal(bus.policyFor("jobs").maxAgeMs, 300_000);
  await bus.close();
});
