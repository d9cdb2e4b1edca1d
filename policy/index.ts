// The jetson-fleet policy pack: `pulumi preview --policy-pack policy --policy-pack-config
// policy/config.<stack>.json`. The rules are pure functions (rules.ts); this file only hands
// them to @pulumi/policy with their config schemas. Every rule is mandatory unless the config
// file says otherwise.
import { PolicyPack, type ResourceValidationPolicy } from "@pulumi/policy";
import * as pulumi from "@pulumi/pulumi";
import { DEFAULT_PRODUCTION_STACKS, DEFAULT_READ_ONLY_PATHS, RULES, type Rule, type RuleConfig } from "./rules.ts";

/** JSON schemas of the config keys rules read. */
const CONFIG_SCHEMAS = {
  allowVersionTags: { type: "boolean", default: true },
  readOnlyPaths: { type: "string", default: DEFAULT_READ_ONLY_PATHS },
  productionStacks: { type: "array", items: { type: "string" }, default: [...DEFAULT_PRODUCTION_STACKS] },
} as const;

function policy(rule: Rule): ResourceValidationPolicy {
  return {
    name: rule.name,
    description: rule.description,
    ...(rule.configKeys.length
      ? { configSchema: { properties: Object.fromEntries(rule.configKeys.map((k) => [k, CONFIG_SCHEMAS[k]])) } }
      : {}),
    validateResource: (args, reportViolation) => {
      const config = args.getConfig<RuleConfig>();
      for (const message of rule.check({ type: args.type, name: args.name, props: args.props }, config, { stack: pulumi.getStack() })) {
        reportViolation(message);
      }
    },
  };
}

new PolicyPack("jetson-fleet", { enforcementLevel: "mandatory", policies: RULES.map(policy) });
