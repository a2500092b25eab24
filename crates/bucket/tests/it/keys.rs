//! Object keys never become paths: whatever the key, files are created only under
//! `{data}/buckets/{bucket id}/{2 hex}/{32 hex}`.

use std::path::Path;

use cairn_bucket::ListOptions;

use crate::{BUCKET, Env, SIZES, body, files_under, is_hex32};

const NASTY_KEYS: [&str; 14] = [
    "../../etc/passwd",
    "../../../../../../../../tmp/escaped",
    "a/../b",
    "/absolute/path",
    "\u{0}x",
    "nul\u{0}in/the\u{0}middle",
    ".",
    "..",
    "./.",
    "a\\..\\..\\windows",
    "ünïcödé/ñ/🙂",
    "con",
    "dir/",
    "//double//slash",
];

/// Checks that every file under the temporary directory is the runtime's or a blob file with
/// a random name, and that no path holds a part of a key.
async fn assert_no_key_became_a_path(env: &Env) {
    let bucket_dir = env.bucket_dir(BUCKET).await;
    let data = env.data_dir();
    for file in files_under(env.root()) {
        assert!(file.starts_with(&data), "{} is outside the data directory", file.display());
        if let Ok(rest) = file.strip_prefix(&bucket_dir) {
            let parts: Vec<&str> = rest.iter().map(|c| c.to_str().expect("UTF-8 path")).collect();
            assert!(
                matches!(parts.as_slice(), [dir, name] if is_hex32(name) && name.starts_with(dir)),
                "unexpected blob path {}",
                file.display()
            );
        } else {
            assert!(!file.starts_with(env.blob_root()), "unexpected file {}", file.display());
        }
        let text = file.to_string_lossy();
        for fragment in ["passwd", "escaped", "absolute", "windows", "ünïcödé", "🙂", "double", "middle"] {
            assert!(!text.contains(fragment), "{} holds {fragment:?}", file.display());
        }
    }
    for outside in ["etc/passwd", "tmp/escaped", "b", "absolute/path"] {
        assert!(!env.root().join(outside).exists());
        assert!(!env.data_dir().join(outside).exists());
        assert!(!env.blob_root().join(outside).exists());
    }
    assert!(!Path::new("/tmp/escaped").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_become_file_names() {
    let env = Env::new().await;
    for (i, key) in NASTY_KEYS.iter().enumerate() {
        for size in SIZES {
            let bytes = body(size, i as u8);
            let put = env.put(key, &bytes).await;
            assert_eq!(put.key, *key);
            assert_eq!(env.get_bytes(key).await.unwrap(), bytes, "{key:?}");
        }
    }
    env.await_blob_files(BUCKET, NASTY_KEYS.len()).await;
    assert_no_key_became_a_path(&env).await;

    // Every key reads back and lists as given, in UTF-8 byte order.
    let mut expected: Vec<&str> = NASTY_KEYS.to_vec();
    expected.sort_unstable();
    let listed = env.svc.list(BUCKET, ListOptions::default()).await.unwrap();
    assert_eq!(listed.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), expected);
    for (i, key) in NASTY_KEYS.iter().enumerate() {
        assert_eq!(env.get_bytes(key).await.unwrap(), body(SIZES[1], i as u8), "{key:?}");
    }

    // Multipart uploads of such keys do not create paths either.
    for key in ["../../etc/passwd", "\u{0}x"] {
        let upload = env.svc.create_multipart(BUCKET, key, Default::default()).await.unwrap();
        let staged = env.svc.stage_bytes(BUCKET, body(60, 1), &[]).await.unwrap();
        env.svc.upload_part(BUCKET, key, &upload.upload_id, 1, staged, Vec::new()).await.unwrap();
    }
    assert_no_key_became_a_path(&env).await;

    let deleted = env.svc.delete(BUCKET, NASTY_KEYS.iter().map(|k| (*k).to_owned()).collect()).await.unwrap();
    assert_eq!(deleted.len(), NASTY_KEYS.len());
    env.await_blob_files(BUCKET, 2).await;
    env.close();
}
