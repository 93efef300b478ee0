/** `serve`: run the appliance in the foreground until SIGTERM/SIGINT; SIGHUP reloads. */
import { Appliance, type ApplianceOptions } from "../../daemon/appliance.ts";
import { EXIT, loadOptions, parse, UsageError, type Io } from "../args.ts";

export async function serve(args: string[], _io: Io): Promise<number> {
  const { values } = parse(args, { listen: { type: "string" } });
  const opts: ApplianceOptions = { load: loadOptions(values) };
  if (values.listen !== undefined) {
    if (!/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):\d{1,5}$/.test(values.listen)) throw new UsageError('--listen takes HOST:PORT, e.g. 0.0.0.0:7420');
    opts.listen = values.listen;
  }
  const app = await Appliance.start(opts);
  // A stray rejection in a background task is logged, not fatal: the daemon keeps serving.
  process.on("unhandledRejection", (err) => app.log.error("unhandled rejection", { error: (err as Error)?.message ?? String(err) }));
  return new Promise<number>((resolve) => {
    let reloading = Promise.resolve();
    process.on("SIGHUP", () => {
      reloading = reloading
        .then(() => app.reload())
        .then(
          () => undefined,
          (err: Error) => app.log.error("reload failed", { error: err.message }),
        );
    });
    const stop = (sig: string) => {
      app.log.info("signal received", { signal: sig });
      void app.stop().then(() => resolve(EXIT.ok));
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
}
