// ESLint for the extension (the backend has ruff): typescript-eslint, plus curly and eqeqeq.
import js from "@eslint/js";
import globals from "globals";
import tseslint from "typescript-eslint";

const house = {
  curly: "error",
  eqeqeq: "error",
  "no-control-regex": "off", // terminal text is full of escape sequences on purpose
};

export default tseslint.config(
  { ignores: ["**/node_modules/**", "extension/dist/**", "extension/out/**", "extension/test/e2e/artifacts/**", ".venv/**"] },
  {
    files: ["extension/**/*.ts"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    rules: {
      ...house,
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true }],
    },
  },
  {
    // src/node/ runs in plain Node (the unit and integration tests load it without VS Code).
    files: ["extension/src/node/**/*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        { paths: [{ name: "vscode", message: "src/node/ is plain Node: put VS Code code in src/vscode/." }], patterns: [{ group: ["**/vscode/**", "../vscode/*"], message: "src/node/ must not import the VS Code side (src/vscode/)." }] },
      ],
    },
  },
  {
    files: ["extension/**/*.mjs", "extension/**/*.js", "*.mjs"],
    extends: [js.configs.recommended],
    languageOptions: { globals: { ...globals.node } },
    rules: house,
  },
  {
    // The end-to-end suite also hands functions to the browser page (page.evaluate).
    files: ["extension/test/e2e/**/*.{js,mjs}"],
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
  },
);
