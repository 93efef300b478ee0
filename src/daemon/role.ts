/**
 * What every role of the appliance is to the daemon (federation, registry, gateway, WAN, and the
 * next one): built from the configuration by its entry in roles.ts, started in list order after
 * the listeners are up, reconfigured on reload with the restart-only keys pinned, closed in
 * reverse order. The daemon builds `/readyz`, `status`, the public routes and the request
 * intercepts from this interface alone. (Roles do not import it: lower layers never import
 * the daemon; they fit it by shape, and roles.ts adapts where a name differs.)
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Hono } from "hono";
import type { Config, Secrets } from "../config/index.ts";
import type { MeshBus } from "../bus/index.ts";
import type { Logger } from "../log/index.ts";
import type { Metrics } from "../metrics/index.ts";
import type { RedisClient } from "../redis/index.ts";

export interface Readiness {
  ok: boolean;
  detail: string;
  [more: string]: unknown;
}

export interface Role {
  readonly name: string;
  /** Starts background work; called once the listeners are up, in list order. */
  start(): Promise<void>;
  /** A reload: the next configuration, restart-only keys already at their running values. */
  reconfigure(config: Config): Promise<void> | void;
  /** Stops; called in reverse list order. */
  close(graceMs: number): Promise<void>;
  /** What `pilox-mesh status` shows under the role's name; no side effect. */
  status(): unknown;
  /** Shown under `checks.<name>` in /readyz. */
  ready?(): Promise<Readiness> | Readiness;
  /** true: not ready makes the appliance unready (503); false: only degraded (work waits on disk). */
  readonly readyRequired?: boolean;
  /** Before /metrics renders: gauges computed on demand (awaited, so a store can be asked). */
  onScrape?(): Promise<void> | void;
  /** Routes on the public listener (a hono sub-app joined with `route()`). */
  routes?(): Hono<any>;
  /** Path prefixes of its routes that bound their own request bodies (after their own auth). */
  readonly selfLimitedPaths?: readonly string[];
  /** Takes a public request before the web framework; true when it answered it. */
  intercept?(req: IncomingMessage, res: ServerResponse, client: string): boolean;
}

/** What the daemon hands every role's factory. */
export interface RoleContext {
  bus: () => MeshBus;
  secrets: () => Secrets;
  metrics: Metrics;
  log: (component: string) => Logger;
  /** A Redis connection beside the bus's (rate limits, jti memory), named for the logs. */
  sideRedis: (name: string) => Promise<RedisClient>;
  /** The discovery document changed (a roster sync): render it again. */
  documentChanged: () => void;
  /** The roles built before this one, by name (the WAN carries federation's peers). */
  role: <R>(name: string) => R | undefined;
}

export interface RoleFactory {
  name: string;
  /** Built at start when this says so (turning a role on or off needs a restart). */
  enabled(config: Config): boolean;
  create(config: Config, ctx: RoleContext): Promise<Role>;
}
