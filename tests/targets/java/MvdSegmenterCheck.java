import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import org.mobilevitdeploy.seg.MvdException;
import org.mobilevitdeploy.seg.MvdSegmenter;

/**
 * Test main for MvdSegmenter on the host JVM (launched by tests/targets/test_app_backend.py).
 *
 * <p>Reads jobs, one per line: BUNDLE FRAME FORMAT(rgba|nv21) WIDTH HEIGHT OUT LABELS_LENGTH. Segments FRAME
 * (raw bytes, rows packed) and writes the labels to OUT and the colours to OUT.rgba; prints one JSON line per job
 * with the class count and timings, or the MvdException's status, name and message.
 */
public final class MvdSegmenterCheck {
    private MvdSegmenterCheck() {}

    public static void main(String[] args) throws Exception {
        List<String> jobs = Files.readAllLines(Paths.get(args[0]));
        for (String job : jobs) {
            if (!job.trim().isEmpty()) {
                System.out.println(run(job.trim().split(" ")));
            }
        }
    }

    private static String run(String[] f) throws Exception {
        byte[] frame = Files.readAllBytes(Paths.get(f[1]));
        int width = Integer.parseInt(f[3]);
        int height = Integer.parseInt(f[4]);
        boolean nv21 = f[2].equals("nv21");
        try (MvdSegmenter seg = MvdSegmenter.open(f[0])) {
            byte[] labels = new byte[Integer.parseInt(f[6])];
            byte[] colors = new byte[width * height * 4];
            MvdSegmenter.Timings t = nv21
                    ? seg.segmentNv21(frame, width, height, width, labels, colors)
                    : seg.segmentRgba(frame, width, height, width * 4, labels, colors);
            Files.write(Paths.get(f[5]), labels);
            Files.write(Paths.get(f[5] + ".rgba"), colors);
            return String.format("{\"status\": 0, \"classes\": %d, \"class0\": \"%s\", \"preprocess_ms\": %.3f, "
                    + "\"inference_ms\": %.3f, \"postprocess_ms\": %.3f}", seg.numClasses(),
                    escape(seg.className(0)), t.preprocessMs, t.inferenceMs, t.postprocessMs);
        } catch (MvdException e) {
            return String.format("{\"status\": %d, \"name\": \"%s\", \"message\": \"%s\"}", e.status(),
                    escape(e.statusName()), escape(e.getMessage()));
        }
    }

    private static String escape(String s) {
        StringBuilder out = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(' ');
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
