// Preloaded into every process the shop starts (`node --import ./with-parent.mjs ...`): when
// start.mjs dies, even by `kill -9` (which it cannot catch to stop its children), the child
// notices that it has been handed to another parent and stops itself with SIGTERM, so no
// service is left holding the shop's ports. Polling the parent id is the portable way: Linux's
// PR_SET_PDEATHSIG is not reachable from Node, and a pipe would take the child's stdin.
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.kill(process.pid, 'SIGTERM');
}, 500).unref();
