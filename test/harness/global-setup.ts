// Placeholder: the harness owner replaces this with real service start-up (redis, prometheus).
export default async function setup(): Promise<void> {}
