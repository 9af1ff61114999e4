-- PhotoPrism index schema for SQLite, as GORM v1 creates it (PhotoPrism 2024-12, commit 382ffa8).
-- Used to build the demo library and test fixtures; faceset itself never writes a real index.
CREATE TABLE "photos" ("id" integer primary key autoincrement,"uuid" VARBINARY(64),"taken_at" DATETIME,"taken_at_local" DATETIME,"taken_src" VARBINARY(8),"photo_uid" VARBINARY(42),"photo_type" VARBINARY(8) DEFAULT 'image',"type_src" VARBINARY(8),"photo_title" VARCHAR(200),"title_src" VARBINARY(8),"photo_description" VARCHAR(4096),"description_src" VARBINARY(8),"photo_path" VARBINARY(1024),"photo_name" VARBINARY(255),"original_name" VARBINARY(755),"photo_stack" integer,"photo_favorite" bool,"photo_private" bool,"photo_scan" bool,"photo_panorama" bool,"time_zone" VARBINARY(64),"place_id" VARBINARY(42) DEFAULT 'zz',"place_src" VARBINARY(8),"cell_id" VARBINARY(42) DEFAULT 'zz',"cell_accuracy" integer,"photo_altitude" integer,"photo_lat" DOUBLE,"photo_lng" DOUBLE,"photo_country" VARBINARY(2) DEFAULT 'zz',"photo_year" integer,"photo_month" integer,"photo_day" integer,"photo_iso" integer,"photo_exposure" VARBINARY(64),"photo_f_number" FLOAT,"photo_focal_length" integer,"photo_quality" SMALLINT,"photo_faces" integer,"photo_resolution" SMALLINT,"photo_duration" bigint,"photo_color" integer,"camera_id" integer DEFAULT 1,"camera_serial" VARBINARY(160),"camera_src" VARBINARY(8),"lens_id" integer DEFAULT 1,"created_by" VARBINARY(42),"created_at" datetime,"updated_at" datetime,"edited_at" datetime,"published_at" datetime,"checked_at" datetime,"estimated_at" datetime,"deleted_at" datetime );
CREATE INDEX idx_photos_uuid ON "photos"("uuid");
CREATE INDEX idx_photos_taken_uid ON "photos"(taken_at, photo_uid);
CREATE UNIQUE INDEX uix_photos_photo_uid ON "photos"(photo_uid);
CREATE INDEX idx_photos_path_name ON "photos"(photo_path, photo_name);
CREATE INDEX idx_photos_place_id ON "photos"(place_id);
CREATE INDEX idx_photos_cell_id ON "photos"(cell_id);
CREATE INDEX idx_photos_photo_lat ON "photos"(photo_lat);
CREATE INDEX idx_photos_photo_lng ON "photos"(photo_lng);
CREATE INDEX idx_photos_country_year_month ON "photos"(photo_country, photo_year, photo_month);
CREATE INDEX idx_photos_ymd ON "photos"(photo_day);
CREATE INDEX idx_photos_camera_lens ON "photos"(camera_id, lens_id);
CREATE INDEX idx_photos_created_by ON "photos"(created_by);
CREATE INDEX idx_photos_published_at ON "photos"(published_at);
CREATE INDEX idx_photos_checked_at ON "photos"(checked_at);
CREATE INDEX idx_photos_deleted_at ON "photos"(deleted_at);

CREATE TABLE "files" ("id" integer primary key autoincrement,"photo_id" integer,"photo_uid" VARBINARY(42),"photo_taken_at" DATETIME,"time_index" VARBINARY(64),"media_id" VARBINARY(32),"media_utc" bigint,"instance_id" VARBINARY(64),"file_uid" VARBINARY(42),"file_name" VARBINARY(1024),"file_root" VARBINARY(16) DEFAULT '/',"original_name" VARBINARY(755),"file_hash" VARBINARY(128),"file_size" bigint,"file_codec" VARBINARY(32),"file_type" VARBINARY(16),"media_type" VARBINARY(16),"file_mime" VARBINARY(64),"file_primary" bool,"file_sidecar" bool,"file_missing" bool,"file_portrait" bool,"file_video" bool,"file_duration" bigint,"file_fps" real,"file_frames" integer,"file_width" integer,"file_height" integer,"file_orientation" integer,"file_orientation_src" VARBINARY(8) DEFAULT '',"file_projection" VARBINARY(64),"file_aspect_ratio" FLOAT,"file_hdr" bool,"file_watermark" bool,"file_color_profile" VARBINARY(64),"file_main_color" VARBINARY(16),"file_colors" VARBINARY(18),"file_luminance" VARBINARY(18),"file_diff" integer,"file_chroma" integer,"file_software" VARCHAR(64),"file_error" VARBINARY(512),"mod_time" bigint,"created_at" datetime,"created_in" bigint,"updated_at" datetime,"updated_in" bigint,"published_at" datetime,"deleted_at" datetime );
CREATE INDEX idx_files_photo_id ON "files"(photo_id, file_primary);
CREATE INDEX idx_files_photo_uid ON "files"(photo_uid);
CREATE INDEX idx_files_photo_taken_at ON "files"(photo_taken_at);
CREATE INDEX idx_files_media_utc ON "files"(media_utc);
CREATE INDEX idx_files_instance_id ON "files"(instance_id);
CREATE UNIQUE INDEX uix_files_file_uid ON "files"(file_uid);
CREATE UNIQUE INDEX idx_files_name_root ON "files"(file_name, file_root);
CREATE INDEX idx_files_file_hash ON "files"(file_hash);
CREATE INDEX idx_files_file_error ON "files"(file_error);
CREATE INDEX idx_files_published_at ON "files"(published_at);
CREATE INDEX idx_files_deleted_at ON "files"(deleted_at);
CREATE UNIQUE INDEX IF NOT EXISTS idx_files_search_media ON files (media_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_files_search_timeline ON files (time_index);
CREATE INDEX IF NOT EXISTS idx_files_missing_root ON files (file_missing, file_root);

CREATE TABLE "markers" ("marker_uid" VARBINARY(42),"file_uid" VARBINARY(42) DEFAULT '',"marker_type" VARBINARY(8) DEFAULT '',"marker_src" VARBINARY(8) DEFAULT '',"marker_name" VARCHAR(160),"marker_review" bool,"marker_invalid" bool,"subj_uid" VARBINARY(42),"subj_src" VARBINARY(8) DEFAULT '',"face_id" VARBINARY(64),"face_dist" real DEFAULT -1,"embeddings_json" MEDIUMBLOB,"landmarks_json" MEDIUMBLOB,"x" FLOAT,"y" FLOAT,"w" FLOAT,"h" FLOAT,"q" integer,"size" integer DEFAULT -1,"score" SMALLINT,"thumb" VARBINARY(128) DEFAULT '',"matched_at" datetime,"created_at" datetime,"updated_at" datetime , PRIMARY KEY ("marker_uid"));
CREATE INDEX idx_markers_file_uid ON "markers"(file_uid);
CREATE INDEX idx_markers_subj_uid_src ON "markers"(subj_uid, subj_src);
CREATE INDEX idx_markers_face_id ON "markers"(face_id);
CREATE INDEX idx_markers_thumb ON "markers"("thumb");
CREATE INDEX idx_markers_matched_at ON "markers"(matched_at);

CREATE TABLE "subjects" ("subj_uid" VARBINARY(42),"subj_type" VARBINARY(8) DEFAULT '',"subj_src" VARBINARY(8) DEFAULT '',"subj_slug" VARBINARY(160) DEFAULT '',"subj_name" varchar(160) DEFAULT '',"subj_alias" varchar(160) DEFAULT '',"subj_about" varchar(512),"subj_bio" varchar(2048),"subj_notes" varchar(1024),"subj_favorite" bool DEFAULT false,"subj_hidden" bool DEFAULT false,"subj_private" bool DEFAULT false,"subj_excluded" bool DEFAULT false,"file_count" integer DEFAULT 0,"photo_count" integer DEFAULT 0,"thumb" VARBINARY(128) DEFAULT '',"thumb_src" VARBINARY(8) DEFAULT '',"created_at" datetime,"updated_at" datetime,"deleted_at" datetime , PRIMARY KEY ("subj_uid"));
CREATE INDEX idx_subjects_subj_slug ON "subjects"(subj_slug);
CREATE UNIQUE INDEX uix_subjects_subj_name ON "subjects"(subj_name);
CREATE INDEX idx_subjects_thumb ON "subjects"("thumb");
CREATE INDEX idx_subjects_deleted_at ON "subjects"(deleted_at);

CREATE TABLE "faces" ("id" VARBINARY(64),"face_src" VARBINARY(8),"face_kind" integer,"face_hidden" bool,"subj_uid" VARBINARY(42) DEFAULT '',"samples" integer,"sample_radius" real,"collisions" integer,"collision_radius" real,"embedding_json" MEDIUMBLOB,"matched_at" datetime,"created_at" datetime,"updated_at" datetime , PRIMARY KEY ("id"));
CREATE INDEX idx_faces_subj_uid ON "faces"(subj_uid);
