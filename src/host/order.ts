import { TrellisError } from '../core/errors.js';

/** Workload names in start order: each after everything it depends on (stop in reverse). */
export function startOrder(deps: Readonly<Record<string, readonly string[]>>): string[] {
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]) => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name];
      throw new TrellisError(
        'TRELLIS_E_HOST_DEPENDENCY_CYCLE',
        `workloads depend on each other in a cycle: ${cycle.join(' -> ')}: remove one dependsOn`,
      );
    }
    state.set(name, 'visiting');
    for (const d of deps[name] ?? []) visit(d, [...path, name]);
    state.set(name, 'done');
    order.push(name);
  };
  for (const name of Object.keys(deps)) visit(name, []);
  return order;
}
