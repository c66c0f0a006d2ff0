import js from '@eslint/js';
import simpleImportSort from 'eslint-plugin-simple-import-sort';
import tseslint from 'typescript-eslint';

// Imports that cross a top-level package use the package.json `imports` aliases
// (#common/x.js is common/src/x.ts); relative paths stay inside one package.
const crossPackage = {
  regex: '^(\\.\\./)+((common|agent|controller|local)/src|proto|test)/',
  message: 'Across packages, import through the aliases in package.json `imports` (#common/…, #agent/…, #controller/…, #local/…, #proto/…, #test/…).',
};
const harness = { group: ['**/test/harness/**', '#test/harness/**'], message: 'Production code never imports the test harness.' };

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/gen/**', '**/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        AbortController: 'readonly',
        fetch: 'readonly',
      },
    },
    plugins: { 'simple-import-sort': simpleImportSort },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [harness, crossPackage] }],
      // One order, applied by `npm run format`: node: built-ins and packages, then #aliases, then relative.
      'simple-import-sort/imports': ['error', { groups: [['^node:', '^@?\\w'], ['^#'], ['^\\.']] }],
      'simple-import-sort/exports': 'error',
    },
  },
  {
    // The controller and the agent are separate programs: only local mode (local/) runs both.
    files: ['controller/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            harness,
            crossPackage,
            { group: ['**/agent/src/**', '#agent/**'], message: 'The controller does not import the agent; shared code goes to common/.' },
          ],
        },
      ],
    },
  },
  {
    files: ['agent/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            harness,
            crossPackage,
            { group: ['**/controller/src/**', '#controller/**'], message: 'The agent does not import the controller; shared code goes to common/.' },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**', '**/*.test.ts', 'bench/**', 'docs/**'],
    rules: { 'no-restricted-imports': ['error', { patterns: [crossPackage] }] },
  },
  {
    // A unit a newcomer can hold in their head: no function over 60 lines in the programs.
    files: ['agent/src/**/*.ts', 'controller/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }] },
  },
);
