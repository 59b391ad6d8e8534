import { type Problem, sendProblem } from '../../http/problem.js';
import type { RequestContext } from '../../http/types.js';

/**
 * Answers with problem details and records the code on the context, so the access log and the
 * gateway's metrics show which middleware refused the request and why.
 */
export function refuse(ctx: RequestContext, problem: Problem): void {
  ctx.errorCode = problem.code;
  sendProblem(ctx, problem);
}
