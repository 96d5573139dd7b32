package org.mobilevitdeploy.seg;

/**
 * A segmentation model from a mobilevit-deploy bundle: camera frame in, label map (and colours) out.
 *
 * <p>Wraps libmvdseg through libmvdseg_jni, so the app gets the same preprocessing and post-processing as the
 * Python pipeline without reimplementing them. Use one instance per thread; {@link #close()} frees the model.
 * Output arrays are passed in so a camera loop can reuse them frame after frame.
 *
 * <pre>{@code
 * try (MvdSegmenter seg = MvdSegmenter.open(bundleDir.getPath())) {
 *     byte[] labels = new byte[width * height];
 *     MvdSegmenter.Timings t = seg.segmentNv21(frame, width, height, width, labels, null);
 * }
 * }</pre>
 */
public final class MvdSegmenter implements AutoCloseable {
    /** Status codes of mvdseg.h. */
    public static final int OK = 0;
    public static final int ERR_INVALID_ARGUMENT = 1;
    public static final int ERR_FRAME_SIZE = 2;
    public static final int ERR_BUNDLE_NOT_FOUND = 3;
    public static final int ERR_BUNDLE_INVALID = 4;
    public static final int ERR_BUNDLE_MODIFIED = 5;
    public static final int ERR_BUNDLE_MISMATCH = 6;
    public static final int ERR_MODEL_LOAD = 7;
    public static final int ERR_INFERENCE = 8;
    public static final int ERR_OUT_OF_MEMORY = 9;
    public static final int ERR_INTERNAL = 10;

    /** Name of the JNI library for System.loadLibrary (libmvdseg_jni.so next to libmvdseg.so). */
    public static final String LIBRARY = "mvdseg_jni";

    private static boolean loaded;

    private long handle;
    private final int numClasses;
    private final String[] classNames;

    /** Milliseconds spent in each stage of one call. */
    public static final class Timings {
        public final double preprocessMs;
        public final double inferenceMs;
        public final double postprocessMs;

        Timings(double[] ms) {
            preprocessMs = ms[0];
            inferenceMs = ms[1];
            postprocessMs = ms[2];
        }

        @Override
        public String toString() {
            return String.format("pre %.2f ms, inference %.2f ms, post %.2f ms", preprocessMs, inferenceMs,
                    postprocessMs);
        }
    }

    private MvdSegmenter(long handle) {
        this.handle = handle;
        this.numClasses = nativeNumClasses(handle);
        this.classNames = new String[numClasses];
        for (int i = 0; i < numClasses; i++) {
            classNames[i] = nativeClassName(handle, i);
        }
    }

    /** Opens a bundle folder (metadata.json + model file) with the runtime's default thread count. */
    public static MvdSegmenter open(String bundleDir) throws MvdException {
        return open(bundleDir, 0);
    }

    /** Opens a bundle folder; numThreads 0 keeps the runtime's default. */
    public static MvdSegmenter open(String bundleDir, int numThreads) throws MvdException {
        loadLibrary();
        if (bundleDir == null) {
            throw new MvdException(ERR_INVALID_ARGUMENT, "MVD_ERR_INVALID_ARGUMENT", "bundleDir is null");
        }
        return new MvdSegmenter(nativeOpen(bundleDir, numThreads));
    }

    private static synchronized void loadLibrary() throws MvdException {
        if (loaded) {
            return;
        }
        try {
            System.loadLibrary(LIBRARY);
            loaded = true;
        } catch (UnsatisfiedLinkError e) {
            throw new MvdException(MvdException.NATIVE_LIBRARY_MISSING, "NATIVE_LIBRARY_MISSING",
                    "cannot load lib" + LIBRARY + ".so (" + e.getMessage() + "); put it, libmvdseg.so and the "
                    + "runtime libraries in the app's jniLibs/<abi>/ folder");
        }
    }

    /**
     * Segments an RGBA8888 frame (stride = bytes per row, at least 4 * width).
     *
     * @param labels receives width * height class ids
     * @param rgbaOut null, or width * height * 4 bytes that receive each pixel's palette colour
     */
    public synchronized Timings segmentRgba(byte[] frame, int width, int height, int stride, byte[] labels,
                                            byte[] rgbaOut) throws MvdException {
        return new Timings(nativeSegment(checkedHandle(), false, frame, width, height, stride, labels, rgbaOut));
    }

    /** Segments an NV21 camera frame (Y rows of `stride` bytes, then the interleaved V/U rows). */
    public synchronized Timings segmentNv21(byte[] frame, int width, int height, int stride, byte[] labels,
                                            byte[] rgbaOut) throws MvdException {
        return new Timings(nativeSegment(checkedHandle(), true, frame, width, height, stride, labels, rgbaOut));
    }

    public int numClasses() {
        return numClasses;
    }

    public String className(int index) {
        return classNames[index];
    }

    @Override
    public synchronized void close() {
        if (handle != 0) {
            nativeClose(handle);
            handle = 0;
        }
    }

    private long checkedHandle() throws MvdException {
        if (handle == 0) {
            throw new MvdException(ERR_INVALID_ARGUMENT, "MVD_ERR_INVALID_ARGUMENT", "the segmenter is closed");
        }
        return handle;
    }

    private static native long nativeOpen(String bundleDir, int numThreads) throws MvdException;

    private static native double[] nativeSegment(long handle, boolean nv21, byte[] frame, int width, int height,
                                                 int stride, byte[] labels, byte[] rgbaOut) throws MvdException;

    private static native int nativeNumClasses(long handle);

    private static native String nativeClassName(long handle, int index);

    private static native void nativeClose(long handle);
}
