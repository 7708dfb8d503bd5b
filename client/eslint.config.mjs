// Next's recommended rules (React, hooks, jsx-a11y, Core Web Vitals) plus
// the TypeScript set. Generated code and build output are not linted.
import nextVitals from "eslint-config-next/core-web-vitals";
import nextTs from "eslint-config-next/typescript";

const config = [
  { ignores: ["node_modules/", ".next/", "out/", "src/gen/", "test-results/", "next-env.d.ts"] },
  ...nextVitals,
  ...nextTs,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
];

export default config;
