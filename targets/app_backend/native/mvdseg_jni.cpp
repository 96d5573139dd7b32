// JNI bridge of org.mobilevitdeploy.seg.MvdSegmenter over the C API: checks Java array sizes (the C API cannot),
// and turns every failure into an MvdException. Nothing here throws a C++ exception across JNI.
#include <jni.h>

#include <cstdint>
#include <string>

#include "mvdseg.h"

namespace {

void throw_mvd(JNIEnv* env, int status, const std::string& message) {
  if (env->ExceptionCheck()) return;  // a Java exception is already pending
  jclass cls = env->FindClass("org/mobilevitdeploy/seg/MvdException");
  if (cls == nullptr) return;  // FindClass left NoClassDefFoundError pending
  jmethodID ctor = env->GetMethodID(cls, "<init>", "(ILjava/lang/String;Ljava/lang/String;)V");
  if (ctor == nullptr) return;
  jstring name = env->NewStringUTF(mvd_status_name(status));
  jstring text = env->NewStringUTF(message.c_str());
  auto error = static_cast<jthrowable>(env->NewObject(cls, ctor, static_cast<jint>(status), name, text));
  if (error != nullptr) env->Throw(error);
}

mvd_segmenter* as_handle(jlong handle) { return reinterpret_cast<mvd_segmenter*>(static_cast<intptr_t>(handle)); }

// Bytes a frame needs: every row but the last is `stride` long, the last at least a row of pixels.
int64_t frame_bytes(bool nv21, int width, int height, int stride) {
  if (nv21) {
    int64_t chroma_rows = height / 2;
    return static_cast<int64_t>(stride) * height + static_cast<int64_t>(stride) * (chroma_rows - 1) + width;
  }
  return static_cast<int64_t>(stride) * (height - 1) + 4 * static_cast<int64_t>(width);
}

// Pins a byte[] for the duration of a call; `mode` is how Release copies back (JNI_ABORT: not at all).
class PinnedBytes {
 public:
  PinnedBytes(JNIEnv* env, jbyteArray array, jint mode) : env_(env), array_(array), mode_(mode) {
    if (array_ != nullptr) data_ = env_->GetByteArrayElements(array_, nullptr);
  }
  ~PinnedBytes() {
    if (data_ != nullptr) env_->ReleaseByteArrayElements(array_, data_, mode_);
  }
  PinnedBytes(const PinnedBytes&) = delete;
  PinnedBytes& operator=(const PinnedBytes&) = delete;
  uint8_t* get() const { return reinterpret_cast<uint8_t*>(data_); }

 private:
  JNIEnv* env_;
  jbyteArray array_;
  jint mode_;
  jbyte* data_ = nullptr;
};

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_org_mobilevitdeploy_seg_MvdSegmenter_nativeOpen(JNIEnv* env, jclass, jstring dir,
                                                                             jint threads) {
  const char* path = env->GetStringUTFChars(dir, nullptr);
  if (path == nullptr) return 0;  // OutOfMemoryError pending
  mvd_options options;
  mvd_default_options(&options);
  options.num_threads = threads;
  mvd_segmenter* handle = nullptr;
  char err[1024];
  int status = mvd_open_with_options(path, &options, &handle, err, sizeof err);
  env->ReleaseStringUTFChars(dir, path);
  if (status != MVD_OK) {
    throw_mvd(env, status, err);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(handle));
}

JNIEXPORT jdoubleArray JNICALL Java_org_mobilevitdeploy_seg_MvdSegmenter_nativeSegment(
    JNIEnv* env, jclass, jlong handle, jboolean nv21, jbyteArray frame, jint width, jint height, jint stride,
    jbyteArray labels, jbyteArray rgba_out) {
  if (frame == nullptr || labels == nullptr) {
    throw_mvd(env, MVD_ERR_INVALID_ARGUMENT, "frame and labels must not be null");
    return nullptr;
  }
  if (width >= 1 && height >= 1 && width <= MVD_MAX_FRAME_SIDE && height <= MVD_MAX_FRAME_SIDE) {
    // Sizes the C API checks are left to it; here only what it cannot see: the Java arrays' lengths.
    const int64_t pixels = static_cast<int64_t>(width) * height;
    const int64_t needed = frame_bytes(nv21, width, height, stride);
    if (stride >= (nv21 ? width : 4 * width) && env->GetArrayLength(frame) < needed) {
      throw_mvd(env, MVD_ERR_INVALID_ARGUMENT, "frame holds " + std::to_string(env->GetArrayLength(frame)) +
                                                   " bytes, a " + std::to_string(width) + "x" +
                                                   std::to_string(height) + " frame with stride " +
                                                   std::to_string(stride) + " needs " + std::to_string(needed));
      return nullptr;
    }
    if (env->GetArrayLength(labels) < pixels) {
      throw_mvd(env, MVD_ERR_INVALID_ARGUMENT, "labels holds " + std::to_string(env->GetArrayLength(labels)) +
                                                   " bytes, needs width*height = " + std::to_string(pixels));
      return nullptr;
    }
    if (rgba_out != nullptr && env->GetArrayLength(rgba_out) < 4 * pixels) {
      throw_mvd(env, MVD_ERR_INVALID_ARGUMENT, "rgbaOut holds " + std::to_string(env->GetArrayLength(rgba_out)) +
                                                   " bytes, needs width*height*4 = " + std::to_string(4 * pixels));
      return nullptr;
    }
  }
  mvd_segmenter* seg = as_handle(handle);
  mvd_timings t{0, 0, 0};
  int status;
  {
    PinnedBytes in(env, frame, JNI_ABORT), out(env, labels, 0), colours(env, rgba_out, 0);
    if (in.get() == nullptr || out.get() == nullptr || (rgba_out != nullptr && colours.get() == nullptr)) {
      return nullptr;  // OutOfMemoryError pending
    }
    status = nv21 ? mvd_segment_nv21(seg, in.get(), width, height, stride, out.get(), colours.get(), &t)
                  : mvd_segment_rgba(seg, in.get(), width, height, stride, out.get(), colours.get(), &t);
  }
  if (status != MVD_OK) {
    throw_mvd(env, status, mvd_last_error(seg));
    return nullptr;
  }
  jdoubleArray result = env->NewDoubleArray(3);
  if (result == nullptr) return nullptr;
  const jdouble ms[3] = {t.preprocess_ms, t.inference_ms, t.postprocess_ms};
  env->SetDoubleArrayRegion(result, 0, 3, ms);
  return result;
}

JNIEXPORT jint JNICALL Java_org_mobilevitdeploy_seg_MvdSegmenter_nativeNumClasses(JNIEnv*, jclass, jlong handle) {
  return mvd_num_classes(as_handle(handle));
}

JNIEXPORT jstring JNICALL Java_org_mobilevitdeploy_seg_MvdSegmenter_nativeClassName(JNIEnv* env, jclass, jlong handle,
                                                                                    jint index) {
  const char* name = mvd_class_name(as_handle(handle), index);
  return name ? env->NewStringUTF(name) : nullptr;
}

JNIEXPORT void JNICALL Java_org_mobilevitdeploy_seg_MvdSegmenter_nativeClose(JNIEnv*, jclass, jlong handle) {
  mvd_close(as_handle(handle));
}

}  // extern "C"
