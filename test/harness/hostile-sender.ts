// The hostile side of hostileWave (hostile-reviews.ts) in a process of its own:
// `hostile-sender.ts <webhook url> <WaveOptions as JSON>`; sends its answers back over IPC.
import { sendWave, type WaveOptions } from './hostile-reviews.ts';

const [url, json] = process.argv.slice(2);
const answers = await sendWave(url!, JSON.parse(json!) as WaveOptions);
process.send!(answers, () => process.exit(0));
