package org.mobilevitdeploy.seg;

/** A libmvdseg failure: the status code of mvdseg.h, its name, and a message saying what to do. */
public final class MvdException extends Exception {
    private static final long serialVersionUID = 1L;

    /** Not a libmvdseg status: the native library itself could not be loaded. */
    public static final int NATIVE_LIBRARY_MISSING = -1;

    private final int status;
    private final String statusName;

    public MvdException(int status, String statusName, String message) {
        super(statusName + ": " + message);
        this.status = status;
        this.statusName = statusName;
    }

    /** The mvd_status code (MvdSegmenter.ERR_*), or NATIVE_LIBRARY_MISSING. */
    public int status() {
        return status;
    }

    /** The status as named in mvdseg.h, e.g. "MVD_ERR_FRAME_SIZE". */
    public String statusName() {
        return statusName;
    }
}
