package runbook.sandbox;

import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.ExternalizedCheckpointRetention;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.PrintSink;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.HashMap;
import java.util.Map;

/**
 * A small, never-ending streaming job whose keyed state proves a restore, not merely a restart.
 *
 * <p>The source emits event number {@code i} as {@code (key "k" + i % keys, seq i / keys)}, one
 * event per key every {@code --rate-ms} milliseconds. The keyed function keeps a {@code
 * ValueState<Long>} per key counting every event of that key over the job's whole life, so after
 * a restore from a savepoint or retained checkpoint the counts go on from the snapshot's values.
 * Since the source position is part of the same snapshot, {@code count == seq + 1} holds for every
 * event of a correctly restored job.
 *
 * <p>Metrics of the operator named {@code counter} (uid {@code counter}), one value per subtask:
 *
 * <ul>
 *   <li>{@code stateCount}: the sum of the counters of the keys this subtask has seen since it
 *       started (the events of those keys over the job's whole life);
 *   <li>{@code maxCount}: the largest counter value;
 *   <li>{@code restoredCount}: the sum of the counter values found in state when this subtask
 *       first saw each key after it started; 0 on a fresh start, above 0 after a restore;
 *   <li>{@code restoredKeys}: how many keys had a value in state at first sight;
 *   <li>{@code eventsSinceStart}: events processed since this subtask started;
 *   <li>{@code seqMismatches}: events whose count was not {@code seq + 1}.
 * </ul>
 *
 * <p>Output records read {@code key=k0 count=N seq=S restored=R}. The TaskManager log gets
 * {@code job NAME (JOBID): key k0 first seen since start: restored count N} once per key and
 * start, and {@code job NAME (JOBID): key k0 count N seq S} every {@code --log-every} events.
 *
 * <p>Arguments: {@code --name NAME} (job name), {@code --rate-ms MS} (per key, default 100),
 * {@code --keys N} (default 4), {@code --checkpoint-ms MS} (default 1000; 0 leaves the cluster's
 * setting), {@code --checkpoint-dir URI} (default: the cluster's), {@code --log-every N} (log a
 * key's count every N events, default 100), {@code --print} (print each output record to the
 * TaskManager's stdout instead of discarding it), {@code --process-delay-ms MS} (sleep that long
 * per event in the keyed function: with a fast {@code --rate-ms} the job runs under backpressure
 * and aligned savepoints become slow), {@code --fail-at-count N} (throw when a key's counter would
 * reach N; since the restart from the last checkpoint reaches N again, the job fails for good once
 * the restart strategy gives up), {@code --checkpoint-timeout-ms MS} (checkpoints and savepoints
 * expire after MS; expired ones do not fail the job), {@code --counter-parallelism N} (the keyed
 * function's own parallelism, 0 for the job's default: a job whose vertices differ in
 * parallelism).
 */
public final class StatefulCounterJob {

    private static final Logger LOG = LoggerFactory.getLogger(StatefulCounterJob.class);

    private StatefulCounterJob() {}

    public static void main(String[] args) throws Exception {
        String name = "runbook-stateful-counter";
        long rateMs = 100;
        int keys = 4;
        long checkpointMs = 1000;
        String checkpointDir = null;
        long logEvery = 100;
        boolean print = false;
        long processDelayMs = 0;
        long failAtCount = 0;
        long checkpointTimeoutMs = 0;
        int counterParallelism = 0;
        ExternalizedCheckpointRetention retention =
                ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION;

        for (int i = 0; i < args.length; i++) {
            String arg = args[i];
            switch (arg) {
                case "--name":
                    name = value(args, ++i, arg);
                    break;
                case "--rate-ms":
                    rateMs = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--keys":
                    keys = Integer.parseInt(value(args, ++i, arg));
                    break;
                case "--checkpoint-ms":
                    checkpointMs = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--checkpoint-dir":
                    checkpointDir = value(args, ++i, arg);
                    break;
                case "--log-every":
                    logEvery = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--print":
                    print = true;
                    break;
                case "--process-delay-ms":
                    processDelayMs = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--checkpoint-timeout-ms":
                    checkpointTimeoutMs = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--fail-at-count":
                    failAtCount = Long.parseLong(value(args, ++i, arg));
                    break;
                case "--checkpoint-retention":
                    retention = ExternalizedCheckpointRetention.valueOf(value(args, ++i, arg));
                    break;
                case "--counter-parallelism":
                    counterParallelism = Integer.parseInt(value(args, ++i, arg));
                    break;
                default:
                    throw new IllegalArgumentException(
                            "unknown argument "
                                    + arg
                                    + "; known: --name, --rate-ms, --keys, --checkpoint-ms,"
                                    + " --checkpoint-dir, --log-every, --print,"
                                    + " --process-delay-ms, --fail-at-count,"
                                    + " --checkpoint-timeout-ms, --checkpoint-retention,"
                                    + " --counter-parallelism");
            }
        }
        if (rateMs <= 0 || keys <= 0 || logEvery <= 0) {
            throw new IllegalArgumentException("--rate-ms, --keys and --log-every must be > 0");
        }

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setRuntimeMode(RuntimeExecutionMode.STREAMING);
        if (checkpointMs > 0) {
            env.enableCheckpointing(checkpointMs);
        }
        env.getCheckpointConfig().setExternalizedCheckpointRetention(retention);
        if (checkpointTimeoutMs > 0) {
            // Expired checkpoints and savepoints then fail alone, not the job.
            env.getCheckpointConfig().setCheckpointTimeout(checkpointTimeoutMs);
            env.getCheckpointConfig().setTolerableCheckpointFailureNumber(Integer.MAX_VALUE);
        }
        if (checkpointDir != null) {
            Configuration conf = new Configuration();
            conf.set(CheckpointingOptions.CHECKPOINTS_DIRECTORY, checkpointDir);
            env.configure(conf);
        }

        final int keyCount = keys;
        GeneratorFunction<Long, Tuple2<String, Long>> generator =
                index -> Tuple2.of("k" + (index % keyCount), index / keyCount);
        TypeInformation<Tuple2<String, Long>> eventType = Types.TUPLE(Types.STRING, Types.LONG);
        double perSecond = keys * 1000.0 / rateMs;
        DataGeneratorSource<Tuple2<String, Long>> source =
                new DataGeneratorSource<>(
                        generator,
                        Long.MAX_VALUE,
                        RateLimiterStrategy.perSecond(perSecond),
                        eventType);

        SingleOutputStreamOperator<String> counted =
                env.fromSource(source, WatermarkStrategy.noWatermarks(), "source")
                        .uid("source")
                        .name("source")
                        .keyBy(event -> event.f0, Types.STRING)
                        .process(new CountPerKey(logEvery, processDelayMs, failAtCount))
                        .uid("counter")
                        .name("counter");
        if (counterParallelism > 0) {
            counted.setParallelism(counterParallelism);
        }

        if (print) {
            counted.sinkTo(new PrintSink<>(name)).uid("sink").name("sink");
        } else {
            counted.sinkTo(new DiscardingSink<>()).uid("sink").name("sink");
        }

        env.execute(name);
    }

    private static String value(String[] args, int i, String flag) {
        if (i >= args.length) {
            throw new IllegalArgumentException(flag + " needs a value");
        }
        return args[i];
    }

    /** Counts events per key in keyed state and publishes what it saw as gauges. */
    static final class CountPerKey extends KeyedProcessFunction<String, Tuple2<String, Long>, String> {

        private static final long serialVersionUID = 1L;

        private final long logEvery;
        private final long processDelayMs;
        private final long failAtCount;

        /** "job NAME (JOBID)", for log lines: several copies may share a TaskManager. */
        private transient String job;

        private transient ValueState<Long> count;
        /** Latest counter value per key seen by this subtask since it started. */
        private transient Map<String, Long> seen;

        private transient volatile long stateCount;
        private transient volatile long maxCount;
        private transient volatile long restoredCount;
        private transient volatile long restoredKeys;
        private transient volatile long eventsSinceStart;
        private transient volatile long seqMismatches;

        CountPerKey(long logEvery, long processDelayMs, long failAtCount) {
            this.logEvery = logEvery;
            this.processDelayMs = processDelayMs;
            this.failAtCount = failAtCount;
        }

        @Override
        public void open(OpenContext openContext) {
            job =
                    "job "
                            + getRuntimeContext().getJobInfo().getJobName()
                            + " ("
                            + getRuntimeContext().getJobInfo().getJobId()
                            + ")";
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
            seen = new HashMap<>();
            MetricGroup metrics = getRuntimeContext().getMetricGroup();
            metrics.gauge("stateCount", (Gauge<Long>) () -> stateCount);
            metrics.gauge("maxCount", (Gauge<Long>) () -> maxCount);
            metrics.gauge("restoredCount", (Gauge<Long>) () -> restoredCount);
            metrics.gauge("restoredKeys", (Gauge<Long>) () -> restoredKeys);
            metrics.gauge("eventsSinceStart", (Gauge<Long>) () -> eventsSinceStart);
            metrics.gauge("seqMismatches", (Gauge<Long>) () -> seqMismatches);
        }

        @Override
        public void processElement(Tuple2<String, Long> event, Context ctx, Collector<String> out)
                throws Exception {
            if (processDelayMs > 0) {
                Thread.sleep(processDelayMs);
            }
            String key = event.f0;
            Long stored = count.value();
            long previous = stored == null ? 0L : stored;
            Long lastSeen = seen.get(key);
            if (lastSeen == null) {
                // First event of this key since this subtask started: whatever the state holds
                // now came from a restored snapshot.
                if (previous > 0) {
                    restoredCount += previous;
                    restoredKeys += 1;
                }
                stateCount += previous;
                LOG.info("{}: key {} first seen since start: restored count {}", job, key, previous);
            }
            long next = previous + 1;
            if (failAtCount > 0 && next == failAtCount) {
                throw new IllegalStateException(
                        job + ": key " + key + " reached --fail-at-count " + failAtCount);
            }
            count.update(next);
            seen.put(key, next);
            stateCount += 1;
            eventsSinceStart += 1;
            if (next > maxCount) {
                maxCount = next;
            }
            if (next != event.f1 + 1) {
                seqMismatches += 1;
            }
            if (next % logEvery == 0) {
                LOG.info("{}: key {} count {} seq {}", job, key, next, event.f1);
            }
            out.collect(
                    "key=" + key + " count=" + next + " seq=" + event.f1 + " restored="
                            + restoredCount);
        }
    }
}
