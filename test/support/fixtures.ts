// Shared test fixtures: key material made fresh per process (never committed) and a valid stack
// config that tests copy and break one field at a time.
import { generateKeyPairSync } from "node:crypto";
import sshpk from "sshpk";
import { StackConfigError, parseStackConfig, type StackConfigInput } from "../../components/index.ts";

export interface KeyPair {
  /** OpenSSH private key text. */
  readonly privateKey: string;
  /** OpenSSH public key line, as `ssh-keyscan` and `authorized_keys` show it. */
  readonly publicKey: string;
}

export function ed25519KeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync("ed25519");
  const key = sshpk.parsePrivateKey(privateKey.export({ type: "pkcs8", format: "pem" }), "pem");
  return {
    privateKey: key.toString("ssh-private"),
    publicKey: key
      .toPublic()
      .toString("ssh")
      .replace(/ \(unnamed\)$/, ""),
  };
}

export const PROJECT = "jetson-fleet";
export const clientKey = ed25519KeyPair();
export const hostKey = ed25519KeyPair();

/** A complete, valid config; every field the later components read has a realistic value. */
export function validConfig(): StackConfigInput {
  return {
    production: false,
    hosts: [
      {
        name: "jetson-01",
        address: "192.168.50.11",
        user: "ubuntu",
        privateKey: clientKey.privateKey,
        hostKey: hostKey.publicKey,
        l4tRelease: "36.4.3",
      },
      {
        name: "jetson-02",
        address: "jetson-02.lab",
        port: 2222,
        user: "ubuntu",
        privateKey: clientKey.privateKey,
        l4tRelease: "36.4.3",
        labels: { camera: "usb" },
      },
    ],
    runtime: { docker: { version: "27.5.1" }, nvidiaToolkitVersion: "1.16.2-1", compose: { version: "2.29.7" } },
    registry: { server: "registry.lab:5000", username: "ci", password: "s3cret-token" },
    images: [
      {
        name: "inference",
        context: "images/inference",
        target: "runtime",
        baseImages: { RUNTIME_BASE: "nvcr.io/nvidia/l4t-tensorrt:r10.3.0-runtime" },
      },
    ],
    services: [
      {
        name: "inference",
        build: "inference",
        runtime: "nvidia",
        network: "host",
        ports: [{ target: 8080 }],
        dependsOn: { mediamtx: "healthy" },
      },
      { name: "mediamtx", image: "bluenviron/mediamtx:1.9.3", network: "host", ports: [{ target: 8554 }, { target: 8889 }] },
    ],
    deploy: { target: "compose" },
  };
}

/** The secret paths a correctly written stack file has for `validConfig()`. */
export const VALID_SECRET_PATHS: ReadonlySet<string> = new Set(["hosts[0].privateKey", "hosts[1].privateKey", "registry.password"]);

/** Engine-style raw values (`<project>:<key>` → JSON text) for a config object. */
export function rawValues(config: Record<string, unknown>, project = PROJECT): Record<string, string> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [`${project}:${k}`, typeof v === "string" ? v : JSON.stringify(v)]));
}

/** The lines of the `StackConfigError` the dev stack's file would give for `config` (none when it is valid). */
export function configProblems(config: Record<string, unknown>): readonly string[] {
  try {
    parseStackConfig({ project: PROJECT, stack: "dev", values: rawValues(config), secretPaths: VALID_SECRET_PATHS });
  } catch (err) {
    if (err instanceof StackConfigError) return err.lines;
    throw err;
  }
  return [];
}
