// The benchmarks' entry point (`make bench`); the work is in cli.ts and run.ts.
import { runBenchCli } from './cli.js';

process.exitCode = await runBenchCli(process.argv.slice(2));
