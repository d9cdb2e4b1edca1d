// Lint rules: typescript-eslint's type-aware recommendations plus Pulumi's own rules
// (an Output in a plain template string is a bug: use pulumi.interpolate).
import pulumi from "@pulumi/eslint-plugin";
import tseslint from "typescript-eslint";

export default tseslint.config(
  // The language host's embedded policy-pack entry is CommonJS run inside @pulumi/pulumi's runtime, outside the TypeScript project.
  {
    ignores: [
      "node_modules/**",
      "dist/**",
      "docs/api/**",
      "tools/pulumi/cmd/pulumi-language-nodejs/*.cjs",
      "test/engine/library-consumer/**",
    ],
  },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["eslint.config.js"] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "@pulumi": pulumi },
    rules: {
      "@pulumi/no-output-in-template-literal": "error",
      "@pulumi/no-output-instance-in-template-literal": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
    },
  },
  {
    files: ["test/**/*.ts"],
    rules: {
      // node:test's describe/it return promises that the runner awaits.
      "@typescript-eslint/no-floating-promises": "off",
      // Tests break configs in ways the types forbid, on purpose.
      "@typescript-eslint/no-explicit-any": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
    },
  },
);
