import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/gen/**', '**/fixtures/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', AbortController: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/test/harness/**'], message: 'Production code never imports the test harness.' }] }],
    },
  },
  {
    // The controller and the agent are separate programs: only local mode (local/) runs both.
    files: ['controller/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/test/harness/**'], message: 'Production code never imports the test harness.' }, { group: ['**/agent/src/**'], message: 'The controller does not import the agent; shared code goes to common/.' }] }],
    },
  },
  {
    files: ['agent/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/test/harness/**'], message: 'Production code never imports the test harness.' }, { group: ['**/controller/src/**'], message: 'The agent does not import the controller; shared code goes to common/.' }] }],
    },
  },
  {
    files: ['test/**', '**/*.test.ts', 'bench/**'],
    rules: { 'no-restricted-imports': 'off' },
  },
  {
    // A unit a newcomer can hold in their head: no function over 60 lines in the programs.
    files: ['agent/src/**/*.ts', 'controller/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: { 'max-lines-per-function': ['error', { max: 60, skipBlankLines: true, skipComments: true, IIFEs: true }] },
  },
);
