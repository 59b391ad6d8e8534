export * from './cpu.js';
export * from './lock.js';
export * from './measure.js';
export * from './nginx.js';
export * from './process.js';
export * from './rounds.js';
export * from './table.js';
export * from './wrk.js';
