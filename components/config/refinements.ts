// The rules of the stack config no single field can check: within one service (mounts, devices,
// ports of a host-network service) and across sections (unique names, references between
// sections, dependency cycles, host port claims, production pinning). They read the value
// defensively: zod runs them even when a field already failed, so one message lists every problem.
import { isIP } from "node:net";
import { z } from "zod";
import { MANAGED_DAEMON_KEYS, containerPath } from "./docker.ts";
import { undigestedImageProblem, unpinnedImageProblem } from "./formats.ts";
import { PROXY_SERVICE, blueGreenRefusal, updatePlan } from "./update.ts";

/** A zod refinement from a function that says what is wrong with a text, or nothing. */
export function checked(problem: (value: string) => string | undefined) {
  return (value: string, ctx: z.RefinementCtx) => {
    const message = problem(value);
    if (message) ctx.addIssue({ code: "custom", message });
  };
}

/** One problem at `path` (relative to the value being refined). */
export function refuse(ctx: z.RefinementCtx, path: PropertyKey[], message: string): void {
  ctx.addIssue({ code: "custom", path, message });
}

/** Reports every repeat in a list of texts (compared by `key`) at the repeat's index. */
export function refuseRepeats(
  list: readonly unknown[],
  ctx: z.RefinementCtx,
  message: (value: string, first: number) => string,
  key: (value: string) => string = (v) => v,
  pathOf: (i: number) => PropertyKey[] = (i) => [i],
): void {
  const first = new Map<string, number>();
  list.forEach((v, i) => {
    if (typeof v !== "string") return;
    const k = key(v);
    const seen = first.get(k);
    if (seen === undefined) first.set(k, i);
    else refuse(ctx, pathOf(i), message(v, seen));
  });
}

/**
 * Rules within one service that no single field can check. Reads the value defensively: it runs
 * even when a field failed (see `ServiceSpec`).
 */
export function refineService(value: unknown, ctx: z.RefinementCtx): void {
  if (!isObject(value)) return;
  const svc = value;
  if ((svc["image"] === undefined) === (svc["build"] === undefined)) {
    refuse(ctx, [], 'expected exactly one of "image" (an external image) and "build" (the name of an images entry)');
  }
  if (svc["network"] === "host") {
    for (const [i, p] of entries(svc["ports"])) {
      const [published, target] = [p["published"], p["target"]];
      if (typeof published === "number" && typeof target === "number" && published !== target) {
        refuse(
          ctx,
          ["ports", i, "published"],
          `a host-network service cannot remap ports (${published} -> ${target}); expected published to equal target or be left out`,
        );
      }
      if (p["hostIp"] !== undefined) {
        refuse(ctx, ["ports", i, "hostIp"], "a host-network service binds the addresses it listens on itself; expected hostIp left out");
      }
    }
  }
  for (const [i, p] of entries(svc["ports"])) {
    if (p["protocol"] === "udp" && p["appProtocol"] !== undefined) {
      refuse(ctx, ["ports", i, "appProtocol"], "a UDP port carries no HTTP or TCP stream; expected appProtocol left out (or protocol tcp)");
    }
  }
  // Docker refuses a container with two mounts at one path ("Duplicate mount point").
  const mounts = entries(svc["volumes"]).flatMap(([i, v]): [number, string][] =>
    typeof v["target"] === "string" ? [[i, v["target"]]] : [],
  );
  const firstMount = new Map<string, number>();
  for (const [i, target] of mounts) {
    const key = containerPath(target);
    const seen = firstMount.get(key);
    if (seen === undefined) firstMount.set(key, i);
    else
      refuse(
        ctx,
        ["volumes", i, "target"],
        `"${target}" is already mounted by volumes[${seen}]; expected each container path mounted once`,
      );
  }
  // Two devices at one container path: the second device node cannot be created.
  if (Array.isArray(svc["devices"])) {
    refuseRepeats(
      svc["devices"],
      ctx,
      (v, first) => `"${v}" maps a container path devices[${first}] maps already; expected each container device path once`,
      (v) => {
        const [hostPath = "", second] = v.split(":");
        return containerPath(second?.startsWith("/") ? second : hostPath);
      },
      (i) => ["devices", i],
    );
  }
}

type Loose = Record<string, unknown>;
const isObject = (v: unknown): v is Loose => v !== null && typeof v === "object" && !Array.isArray(v);
/** The object entries of a list with their indexes; anything else is the schema's business. */
const entries = (v: unknown): [number, Loose][] =>
  Array.isArray(v) ? v.flatMap((item, i): [number, Loose][] => (isObject(item) ? [[i, item]] : [])) : [];
const text = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined);

function uniqueNames(list: unknown, key: string, what: string, ctx: z.RefinementCtx): void {
  const first = new Map<string, number>();
  for (const [i, item] of entries(list)) {
    const name = text(item["name"]);
    if (name === undefined) continue;
    const seen = first.get(name);
    if (seen === undefined) first.set(name, i);
    else refuse(ctx, [key, i, "name"], `duplicate ${what} name "${name}" (also ${key}[${seen}]); expected every ${what} name once`);
  }
}

/** Rules that span several fields or sections, by section. Reads the value defensively (see `StackConfig`). */
export function refineStackConfig(value: unknown, ctx: z.RefinementCtx): void {
  if (!isObject(value)) return;
  refineHosts(value, ctx);
  refineRuntime(value, ctx);
  refineImages(value, ctx);
  refineServices(value, ctx);
  refineModels(value, ctx);
  refineDeploy(value, ctx);
}

/** Unique host names; production pins every host key. */
function refineHosts(cfg: Loose, ctx: z.RefinementCtx): void {
  uniqueNames(cfg["hosts"], "hosts", "host", ctx);
  if (cfg["production"] !== true) return;
  for (const [hi, host] of entries(cfg["hosts"])) {
    if (host["hostKey"] === undefined) {
      refuse(
        ctx,
        ["hosts", hi, "hostKey"],
        "is missing; production stacks pin every host key: expected the output of ssh-keyscan -t ed25519 <address>",
      );
    }
  }
}

/** daemon.json keys the host component owns; a compose tool wherever compose runs. */
function refineRuntime(cfg: Loose, ctx: z.RefinementCtx): void {
  const runtime = cfg["runtime"];
  const daemonJson = isObject(runtime) ? runtime["daemonJson"] : undefined;
  for (const key of MANAGED_DAEMON_KEYS) {
    if (isObject(daemonJson) && key in daemonJson) {
      refuse(
        ctx,
        ["runtime", "daemonJson", key],
        `"${key}" is managed by the host component; expected runtime.nvidiaDefaultRuntime instead`,
      );
    }
  }
  const deploy = isObject(cfg["deploy"]) ? cfg["deploy"] : {};
  const perHostCompose =
    (deploy["target"] ?? "compose") === "compose" && entries(cfg["hosts"]).length > 0 && entries(cfg["services"]).length > 0;
  // Only when runtime is there: a missing runtime is its own problem.
  if (perHostCompose && isObject(runtime) && runtime["compose"] === undefined) {
    refuse(
      ctx,
      ["runtime", "compose"],
      'is missing; deploy.target compose runs a compose tool on every host: expected { package: "docker-compose-plugin", version: "<apt version>" } (or docker-compose-v2 / docker-compose)',
    );
  }
}

/** Unique image names; somewhere to push each; production base images pinned by digest. */
function refineImages(cfg: Loose, ctx: z.RefinementCtx): void {
  uniqueNames(cfg["images"], "images", "image", ctx);
  for (const [ii, img] of entries(cfg["images"])) {
    if (cfg["registry"] === undefined && img["repository"] === undefined) {
      refuse(
        ctx,
        ["images", ii, "repository"],
        "is missing and no registry is configured; expected registry.server, or a full repository such as registry.lab:5000/fleet/inference",
      );
    }
    if (cfg["production"] !== true) continue;
    for (const [arg, ref] of Object.entries(isObject(img["baseImages"]) ? img["baseImages"] : {})) {
      const problem = typeof ref === "string" ? undigestedImageProblem(ref) : undefined;
      if (problem) refuse(ctx, ["images", ii, "baseImages", arg], problem);
    }
  }
}

/** Services among each other: names, references, dependency cycles, host ports; production image pins. */
function refineServices(cfg: Loose, ctx: z.RefinementCtx): void {
  uniqueNames(cfg["services"], "services", "service", ctx);
  const services = entries(cfg["services"]);
  const serviceNames = services.flatMap(([, s]) => text(s["name"]) ?? []);
  const imageNames = entries(cfg["images"]).flatMap(([, i]) => text(i["name"]) ?? []);
  const byName = new Map(
    services.flatMap(([i, s]): [string, [number, Loose]][] => (text(s["name"]) ? [[text(s["name"]) ?? "", [i, s]]] : [])),
  );
  const dependsOn = (s: Loose) => (isObject(s["dependsOn"]) ? s["dependsOn"] : {});
  const proxy = cfg["proxy"] !== undefined;
  const perHost = !isObject(cfg["deploy"]) || cfg["deploy"]["target"] !== "kubernetes";
  for (const [si, svc] of services) {
    const name = text(svc["name"]);
    if (name === PROXY_SERVICE) {
      refuse(ctx, ["services", si, "name"], `"${PROXY_SERVICE}" is the name of the stack's proxy on every host; expected another name`);
    }
    const refusal =
      svc["update"] === "blue-green" && perHost
        ? blueGreenRefusal(
            svc,
            services.map(([, s]) => s),
            proxy,
          )
        : undefined;
    if (refusal !== undefined) {
      refuse(
        ctx,
        ["services", si, "update"],
        `"blue-green" cannot work for service "${name ?? si}": ${refusal}; expected "recreate"${refusal.includes("jetson-fleet:proxy") ? ", or a proxy (proxy.image or proxy.build)" : ""}`,
      );
    }
    const others = serviceNames.filter((n) => n !== name);
    for (const [dep, condition] of Object.entries(dependsOn(svc))) {
      if (dep === name) {
        refuse(ctx, ["services", si, "dependsOn", dep], `service "${dep}" depends on itself; expected other services' names`);
      } else if (!byName.has(dep)) {
        refuse(
          ctx,
          ["services", si, "dependsOn", dep],
          `service "${dep}" is not defined; expected one of: ${others.join(", ") || "(no other services)"}`,
        );
      } else if (condition === "healthy" && healthCheckOff(byName.get(dep)?.[1])) {
        // compose waits for a health status the container never gets, and gives up.
        refuse(
          ctx,
          ["services", si, "dependsOn", dep],
          `service "${dep}" turns its health check off (healthcheck.test ["NONE"]); expected condition "started", or a health check on "${dep}"`,
        );
      }
    }
    const ipc = text(svc["ipc"]);
    if (ipc?.startsWith("service:")) {
      const donor = ipc.slice("service:".length);
      if (donor === name)
        refuse(ctx, ["services", si, "ipc"], `"${ipc}" names the service itself; expected another service's name, or "shareable"`);
      else if (!byName.has(donor))
        refuse(
          ctx,
          ["services", si, "ipc"],
          `service "${donor}" is not defined; expected one of: ${others.join(", ") || "(no other services)"}`,
        );
    }
    const build = text(svc["build"]);
    if (build !== undefined && !imageNames.includes(build)) {
      refuse(
        ctx,
        ["services", si, "build"],
        `image "${build}" is not defined under images; expected one of: ${imageNames.join(", ") || "(no images)"}`,
      );
    }
    if (cfg["production"] === true) {
      const image = text(svc["image"]);
      const problem = image === undefined ? undefined : unpinnedImageProblem(image);
      if (problem) refuse(ctx, ["services", si, "image"], problem);
    }
  }
  // compose resolves a relative bind source against its project directory; the daemon refuses one.
  if (isObject(cfg["deploy"]) && cfg["deploy"]["target"] === "containers") {
    for (const [si, svc] of services) {
      for (const [vi, v] of entries(svc["volumes"])) {
        const source = text(v["source"]);
        if ((v["type"] ?? "bind") === "bind" && source !== undefined && !source.startsWith("/")) {
          refuse(
            ctx,
            ["services", si, "volumes", vi, "source"],
            `${JSON.stringify(source)} is relative, and deploy.target containers hands it to the Docker daemon, which takes absolute host paths only; expected e.g. /opt/models`,
          );
        }
      }
    }
  }
  const proxyBuild = isObject(cfg["proxy"]) ? text(cfg["proxy"]["build"]) : undefined;
  if (proxyBuild !== undefined && !imageNames.includes(proxyBuild)) {
    refuse(
      ctx,
      ["proxy", "build"],
      `image "${proxyBuild}" is not defined under images; expected one of: ${imageNames.join(", ") || "(no images)"}`,
    );
  }
  if (cfg["production"] === true && isObject(cfg["proxy"])) {
    const image = text(cfg["proxy"]["image"]);
    const problem = image === undefined ? undefined : unpinnedImageProblem(image);
    if (problem) refuse(ctx, ["proxy", "image"], problem);
  }
  if (perHost) refineProxyPorts(services, proxy, ctx);
  refineDependencyCycles(services, byName, dependsOn, ctx);
  refineHostPorts(services, ctx);
}

/**
 * The proxy takes each blue-green service's published TCP ports on its own network address, so a
 * port number carries one route there, whatever host addresses two services publish it on.
 */
function refineProxyPorts(services: [number, Loose][], proxy: boolean, ctx: z.RefinementCtx): void {
  const all = services.map(([, s]) => s);
  const first = new Map<number, string>();
  for (const [si, svc] of services) {
    if (updatePlan(svc, all, proxy).strategy !== "blue-green") continue;
    for (const [pi, p] of entries(svc["ports"])) {
      const port = p["published"] ?? p["target"];
      if ((p["protocol"] ?? "tcp") !== "tcp" || typeof port !== "number") continue;
      const seen = first.get(port);
      if (seen === undefined) first.set(port, `service "${text(svc["name"]) ?? si}" (services[${si}].ports[${pi}])`);
      else
        refuse(
          ctx,
          ["services", si, "ports", pi],
          `port ${port} is also published by ${seen}; both are blue-green, and their proxy carries one route per port number: expected distinct ports, or update "recreate" on one of them`,
        );
    }
  }
}

function healthCheckOff(svc: Loose | undefined): boolean {
  const check = svc?.["healthcheck"];
  return isObject(check) && Array.isArray(check["test"]) && check["test"][0] === "NONE";
}

/** compose refuses a project whose services depend on each other in a circle; each circle is named once. */
function refineDependencyCycles(
  services: [number, Loose][],
  byName: Map<string, [number, Loose]>,
  dependsOn: (s: Loose) => Loose,
  ctx: z.RefinementCtx,
): void {
  const state = new Map<string, "visiting" | "done">();
  const visit = (name: string, path: string[]) => {
    state.set(name, "visiting");
    const [si, svc] = byName.get(name) ?? [-1, {}];
    for (const dep of Object.keys(dependsOn(svc))) {
      if (dep === name || !byName.has(dep)) continue; // reported above
      if (state.get(dep) === "visiting") {
        const circle = [...path.slice(path.indexOf(dep)), name, dep];
        refuse(
          ctx,
          ["services", si, "dependsOn", dep],
          `services depend on each other in a cycle: ${circle.join(" -> ")}; expected no cycles in dependsOn`,
        );
      } else if (state.get(dep) === undefined) {
        visit(dep, [...path, name]);
      }
    }
    state.set(name, "done");
  };
  for (const [, svc] of services) {
    const name = text(svc["name"]);
    if (name !== undefined && state.get(name) === undefined) visit(name, []);
  }
}

/**
 * Every host port can be claimed once per protocol and address: host-network services bind it on
 * every address, bridge services publish it on `hostIp` (0.0.0.0 unless given), and one claim on a
 * wildcard address overlaps every claim of its family.
 */
function refineHostPorts(services: [number, Loose][], ctx: z.RefinementCtx): void {
  const claims: { service: string; si: number; pi: number; port: number; protocol: string; ip: string | undefined }[] = [];
  for (const [si, svc] of services) {
    const host = svc["network"] === "host";
    for (const [pi, p] of entries(svc["ports"])) {
      const port = host ? p["target"] : (p["published"] ?? p["target"]);
      if (typeof port !== "number") continue;
      const protocol = text(p["protocol"]) ?? "tcp";
      const ip = host ? undefined : (text(p["hostIp"]) ?? "0.0.0.0");
      const holder = claims.find((c) => c.port === port && c.protocol === protocol && addressesOverlap(c.ip, ip));
      const bound = ip !== undefined && ip !== "0.0.0.0" && ip !== "::" ? `${ip.includes(":") ? `[${ip}]` : ip}:` : "";
      const id = `${bound}${port}/${protocol}`;
      if (!holder) claims.push({ service: text(svc["name"]) ?? `services[${si}]`, si, pi, port, protocol, ip });
      else if (holder.si === si) {
        refuse(
          ctx,
          ["services", si, "ports", pi],
          `host port ${id} is already claimed by ports[${holder.pi}] of this service; expected each host port once`,
        );
      } else {
        refuse(
          ctx,
          ["services", si, "ports", pi],
          `host port ${id} is already claimed by service "${holder.service}" (services[${holder.si}]); expected each host port to be used by one service`,
        );
      }
    }
  }
}

/** Whether two bind addresses (undefined: every address) can hold the same port. */
function addressesOverlap(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a === b || a === "::" || b === "::") return true;
  if (a === "0.0.0.0") return isIP(b) === 4;
  if (b === "0.0.0.0") return isIP(a) === 4;
  return false;
}

/**
 * Unique model names; models fetched from the stack's registry; each service's models defined,
 * once each, on the GPU, mounted where no other mount is.
 */
function refineModels(cfg: Loose, ctx: z.RefinementCtx): void {
  uniqueNames(cfg["models"], "models", "model", ctx);
  const models = entries(cfg["models"]);
  const modelNames = models.flatMap(([, m]) => text(m["name"]) ?? []);
  const server = isObject(cfg["registry"]) ? text(cfg["registry"]["server"]) : undefined;
  for (const [mi, model] of models) {
    const source = isObject(model["source"]) ? model["source"] : {};
    const artifact = text(source["artifact"]);
    if (server === undefined && (text(source["file"]) !== undefined || artifact !== undefined)) {
      refuse(
        ctx,
        ["models", mi, "source"],
        "needs the stack's registry, which hosts fetch models from; expected registry.server (and its credentials, if it takes any)",
      );
    } else if (artifact !== undefined && server !== undefined && !artifact.startsWith(`${server}/`)) {
      refuse(
        ctx,
        ["models", mi, "source", "artifact"],
        `${JSON.stringify(artifact)} is not in the stack's registry ${server}, the one hosts fetch from with the stack's credentials; expected ${server}/<repository>@sha256:<digest>`,
      );
    }
  }
  for (const [si, svc] of entries(cfg["services"])) {
    const refs = entries(svc["models"]);
    if (refs.length > 0 && svc["runtime"] !== "nvidia") {
      refuse(
        ctx,
        ["services", si, "runtime"],
        `service "${text(svc["name"]) ?? si}" runs models, whose TensorRT engines are built and loaded on the GPU; expected runtime "nvidia"`,
      );
    }
    refuseRepeats(
      refs.map(([, r]) => r["name"]),
      ctx,
      (v, first) => `model "${v}" is listed twice (also services[${si}].models[${first}]); expected each model once per service`,
      (v) => v,
      (i) => ["services", si, "models", i, "name"],
    );
    const targets = entries(svc["volumes"]).flatMap(([vi, v]): [number, string][] =>
      typeof v["target"] === "string" ? [[vi, containerPath(v["target"])]] : [],
    );
    const paths = new Map<string, number>();
    for (const [ri, ref] of refs) {
      const name = text(ref["name"]);
      if (name !== undefined && !modelNames.includes(name)) {
        refuse(
          ctx,
          ["services", si, "models", ri, "name"],
          `model "${name}" is not defined under models; expected one of: ${modelNames.join(", ") || "(no models)"}`,
        );
      }
      const path = text(ref["path"]);
      if (path === undefined || !path.startsWith("/")) continue;
      const engine = containerPath(path);
      const seen = paths.get(engine);
      if (seen !== undefined) {
        refuse(
          ctx,
          ["services", si, "models", ri, "path"],
          `"${path}" is also services[${si}].models[${seen}].path; expected one path per model`,
        );
        continue;
      }
      paths.set(engine, ri);
      // Docker would have to make the mount point inside the other mount's source on the host.
      // The engine at `path`, its record at `path.json`.
      const under = targets.find(([, t]) => engine === t || `${engine}.json` === t || engine.startsWith(`${t}/`));
      if (under) {
        refuse(
          ctx,
          ["services", si, "models", ri, "path"],
          `"${path}" is at or inside services[${si}].volumes[${under[0]}] (${under[1]}); expected the engine mounted outside the service's other mounts, e.g. /models/model.engine with no volume at /models`,
        );
      }
    }
  }
}

/** A kubernetes target needs exactly one way to reach its cluster. */
function refineDeploy(cfg: Loose, ctx: z.RefinementCtx): void {
  const deploy = isObject(cfg["deploy"]) ? cfg["deploy"] : {};
  if (deploy["target"] !== "kubernetes") return;
  const cluster = isObject(deploy["kubernetes"]) ? deploy["kubernetes"] : {};
  const given = ["kubeconfig", "renderYamlToDirectory"].filter((k) => cluster[k] !== undefined);
  if (given.length !== 1) {
    refuse(
      ctx,
      ["deploy", "kubernetes"],
      given.length === 0
        ? "target kubernetes needs a cluster; expected kubeconfig (a secret) or renderYamlToDirectory"
        : "sets both kubeconfig and renderYamlToDirectory; expected one of them",
    );
  }
}
