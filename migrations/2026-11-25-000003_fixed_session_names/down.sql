DROP TRIGGER sessions_name_is_fixed ON sessions;
DROP FUNCTION sessions_name_is_fixed();
