// The stand-in's long operations (booting, preparing a target, migrating) run
// as tasks; each tick reads how they are doing and turns that into status, the
// way KubeVirt's controllers read what virt-handler reports.
import { setTimeout as sleep } from 'node:timers/promises';

export interface Task<T> {
  done: boolean;
  result?: T;
  error?: Error;
}

export function track<T>(promise: Promise<T>): Task<T> {
  const task: Task<T> = { done: false };
  promise.then(
    (result) => Object.assign(task, { done: true, result }),
    (error: unknown) =>
      Object.assign(task, { done: true, error: error instanceof Error ? error : new Error(String(error)) }),
  );
  return task;
}

export async function waitFor(task: Task<unknown>): Promise<void> {
  while (!task.done) await sleep(50);
}
