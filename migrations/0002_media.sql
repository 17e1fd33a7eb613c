-- Container and stream facts of videos and recordings (ffprobe / symphonia), as JSON:
-- container, codecs, frame rate, audio tracks and their languages.
ALTER TABLE assets ADD COLUMN media TEXT;
