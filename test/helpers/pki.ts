/** A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1, a client certificate. */
import { execFileSync } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });

/** Writes ca.{key,crt}, server.{key,crt} (127.0.0.1) and client.{key,crt} into `dir`. */
export function makePki(dir: string): void {
  const p = (f: string) => join(dir, f);
  const key = (name: string) => {
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", p(`${name}.key`));
    chmodSync(p(`${name}.key`), 0o600);
  };
  key("ca");
  openssl("req", "-x509", "-new", "-key", p("ca.key"), "-days", "2", "-subj", "/CN=pilox test CA", "-out", p("ca.crt"));
  for (const [name, ext] of [
    ["server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"],
    ["client", "extendedKeyUsage=clientAuth\n"],
  ] as const) {
    key(name);
    openssl("req", "-new", "-key", p(`${name}.key`), "-subj", `/CN=${name}`, "-out", p(`${name}.csr`));
    writeFileSync(p(`${name}.ext`), ext);
    openssl("x509", "-req", "-in", p(`${name}.csr`), "-CA", p("ca.crt"), "-CAkey", p("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", p(`${name}.ext`), "-out", p(`${name}.crt`));
  }
}
