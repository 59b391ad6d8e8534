export { Notifier } from '../notifier.js';
