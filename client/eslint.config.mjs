// Next's recommended rules (React, hooks, jsx-a11y, Core Web Vitals) plus
// the TypeScript set. Generated code and build output are not linted.
import nextVitals from "eslint-config-next/core-web-vitals";
import nextTs from "eslint-config-next/typescript";

const config = [
  {
    ignores: [
      "node_modules/",
      ".next/",
      "out/",
      "src/signaling/gen/",
      "src/signaling/dist/",
      "test-results/",
      "next-env.d.ts",
    ],
  },
  ...nextVitals,
  ...nextTs,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
    },
  },
  {
    // The app uses the signaling library as its users do: through the
    // package's entry points, never its files (see src/signaling/README.md).
    files: ["app/**", "src/rtc/**", "src/ui/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              // A relative path into src/signaling, or a subpath the package does not export.
              regex: "^\\.\\.?/(.*/)?signaling(/|$)|^@switchboard/signaling/(?!proto$)",
              message: "Import from \"@switchboard/signaling\" or \"@switchboard/signaling/proto\".",
            },
          ],
        },
      ],
    },
  },
];

export default config;
